async function (n, current, config) {
    const prefix = (config && config.prefix) || "/_sessionmw/";
    __HOOK__
    if (current && current.sticky) { return window.dash_clientside.no_update; }
    try {
        const response = await fetch(prefix + "health", {
            credentials: "same-origin", cache: "no-store", headers: {Accept: "application/health+json"}
        });
        const body = await response.json();
        return body.session || window.dash_clientside.no_update;
    } catch (e) {
        return {status: "error", healthy: false, icon: "🔌", title: "Connection problem",
                message: "🔌 The server cannot be reached right now",
                recovery: ["Check your network connection.",
                           "Wait a moment: this page checks again by itself."],
                context: ""};
    }
}
