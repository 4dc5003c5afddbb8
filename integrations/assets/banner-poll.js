async function (n, current, config) {
    // Only for changes nobody on this page caused (expiry, another tab): every callback's
    // response already carries the session's health.
    const prefix = (config && config.prefix) || "/_sessionmw/";
    __HOOK__
    if (current && current.sticky) { return window.dash_clientside.no_update; }
    if (current && current.statement && current.statement.status === "reconnected") {
        return window.dash_clientside.no_update;  // the confirmation stays its few seconds
    }
    try {
        // ?page=1: the answer is 200 whatever the state, so the console logs no failed request.
        const response = await fetch(prefix + "health?page=1", {
            credentials: "same-origin", cache: "no-store", headers: {Accept: "application/health+json"}
        });
        const body = await response.json();
        const report = body.session;
        if (!report) { return window.dash_clientside.no_update; }
        if (current && current.statement && current.status === report.status &&
                current.error_count === report.error_count) {
            return window.dash_clientside.no_update;  // nothing changed: keep what the last failure said
        }
        return report;
    } catch (e) {
        return {status: "error", healthy: false, statement: (config && config.unreachable) || null};
    }
}
