async function (n, current, config) {
    // Only for changes nobody on this page caused (expiry, another tab, a paused service coming
    // back): every callback's response already carries the session's health.
    const prefix = (config && config.prefix) || "/_sessionmw/";
    __HOOK__
    // What the page knows: the store's report, unless it is an older poll answer banner-render.js
    // kept the banner over (then what is on screen). A report a response or the page wrote (no
    // `asked` stamp) is the newest, even while Dash still holds the banner back from drawing it (a
    // poll ran meanwhile): compared with the banner on screen, this poll's answer (the session's
    // error state) would replace what the failure said ("Something went wrong").
    if (window.__sessionmwShown && (!current || current.asked)) { current = window.__sessionmwShown.report; }
    if (current && current.sticky) { return window.dash_clientside.no_update; }
    if (current && current.statement && current.statement.status === "reconnected") {
        return window.dash_clientside.no_update;  // the confirmation stays its few seconds
    }
    // The paused dependencies, by state and whether a probe is due (not the seconds left, so
    // that the countdown on screen is not restarted by every poll).
    const paused = function (report) {
        return ((report && report.dependencies) || []).map(function (item) {
            return item.name + ":" + item.state + ":" + (item.retry_in === 0 ? "due" : "wait");
        }).join(",");
    };
    // What the page knows when the question is asked: a callback response that arrives, or a
    // banner change, while the answer travels is newer than the answer, and wins over it.
    const asked = window.__sessionmwShown ? window.__sessionmwShown.generation : 0;
    const answers = window.__sessionmwAnswers || 0;
    const countdown = window.__sessionmwCountdown;
    const counted = Boolean(countdown && Date.now() >= countdown.deadline);
    try {
        // ?page=1: the answer is 200 whatever the state, so the console logs no failed request.
        const response = await fetch(prefix + "health?page=1", {
            credentials: "same-origin", cache: "no-store", headers: {Accept: "application/health+json"}
        });
        const body = await response.json();
        const report = body.session;
        if (!report) { return window.dash_clientside.no_update; }
        const shown = window.__sessionmwShown;
        if ((window.__sessionmwAnswers || 0) !== answers || (shown && shown.generation !== asked)) {
            return window.dash_clientside.no_update;  // newer than this answer: keep it
        }
        if (current && current.statement && !current.unreachable && current.status === report.status &&
                current.error_count === report.error_count && paused(current) === paused(report) &&
                !counted) {
            return window.dash_clientside.no_update;  // nothing changed: keep what the last failure said
        }
        // Stamped with what the page knew: Dash applies this answer a moment later, and a callback
        // response may come in between (banner-render.js then keeps the newer one on screen).
        return Object.assign({}, report, {asked: {generation: asked, answers: answers}});
    } catch (e) {
        // the banner says so, and asks again every few seconds (banner-render.js)
        return window.__sessionmwUnreachable();
    }
}
