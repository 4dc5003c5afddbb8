async function (clicks, config) {
    const prefix = (config && config.prefix) || "/_sessionmw/";
    try {
        const response = await fetch(prefix + "reconnect", {
            method: "POST", credentials: "same-origin", cache: "no-store",
            headers: {Accept: "application/json"}
        });
        // Newer than any health poll in flight (banner-poll.js): that poll's answer is dropped.
        window.__sessionmwAnswers = (window.__sessionmwAnswers || 0) + 1;
        const body = await response.json();
        const report = body.session;
        if (!report) { return window.dash_clientside.no_update; }
        if (!report.healthy) { return report; }
        // Reconnected: say so briefly, then the banner goes.
        const store = "__STORE__";
        setTimeout(function () {
            window.dash_clientside.set_props(store, {data: Object.assign({}, report, {statement: null})});
        }, 4000);
        return Object.assign({}, report, {statement: (config && config.reconnected) || null});
    } catch (e) {
        return window.dash_clientside.no_update;
    }
}
