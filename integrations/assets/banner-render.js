function (report, config) {
    // One voice: the server's statement (sessionmw.messages) when the report carries one; the
    // icon is drawn here, once, as inline SVG (no emoji font needed).
    const styles = (config && config.styles) || {};
    const bootstrap = Boolean(config && config.theme === "bootstrap");
    const hidden = {display: "none"};
    // What is on screen, and how many times it changed: a poll that was asked before a change
    // does not overwrite it with its older answer (banner-poll.js checks when the answer comes;
    // here, when Dash applies it, for a callback response that came in between).
    const shown = window.__sessionmwShown;
    const asked = report && report.asked;
    if (asked && shown && (shown.generation !== asked.generation ||
                           (window.__sessionmwAnswers || 0) !== asked.answers)) {
        report = shown.report;
    }
    const said = report && report.statement;
    window.__sessionmwShown = {report: report, generation: shown ? shown.generation + 1 : 1};
    const ticking = window.__sessionmwCountdown;
    if (ticking && ticking.timer) { clearInterval(ticking.timer); }
    window.__sessionmwCountdown = null;
    // The server cannot be reached: ask again every few seconds (not at the next poll, minutes
    // away), so the page carries on by itself as soon as the server is back.
    if (window.__sessionmwRetry) { clearTimeout(window.__sessionmwRetry); }
    window.__sessionmwRetry = report && report.unreachable ? setTimeout(function () {
        window.__sessionmwRetry = null;
        window.dash_clientside.set_props("__POLL__", {n_intervals: Date.now()});
    }, __RETRY_MS__) : null;
    // The page's state, for stylesheets: e.g. the app's action buttons look unavailable while
    // the server would refuse them (disconnected, expired, not found, unreachable).
    const root = document.documentElement;
    root.className = root.className.replace(/\bsessionmw-state-\S+/g, "").trim();
    const state = !report || !said ? "" : (report.unreachable ? "unreachable" : String(said.status || ""));
    if (state) { root.className = (root.className + " sessionmw-state-" + state).trim(); }
    if (!report || !said) {
        return [hidden, "sessionmw-banner", "", "", "", [], "", hidden];
    }
    const status = said.status || "error";
    let message = said.message || "";
    // A paused dependency (an open circuit breaker): its countdown ticks here, every second,
    // in the browser; when it ends, the page asks the server at once (its health poll).
    const paused = status === "degraded" ? (report.dependencies || [])[0] : null;
    if (paused && paused.state === "open" && typeof paused.retry_in === "number") {
        const texts = (config && config.paused) || {};
        const service = String(paused.service || paused.name || "");
        const deadline = Date.now() + paused.retry_in * 1000;
        const say = function () {
            const left = Math.ceil((deadline - Date.now()) / 1000);
            const text = texts[left <= 0 ? "now" : (left === 1 ? "one" : "many")] || message;
            return text.replace("{service}", service).replace("{n}", String(left));
        };
        message = say();
        const countdown = {deadline: deadline, timer: null};
        if (paused.retry_in > 0) {
            countdown.timer = setInterval(function () {
                window.dash_clientside.set_props("__MESSAGE__", {children: say()});
                if (Date.now() >= deadline) {
                    clearInterval(countdown.timer);
                    countdown.timer = null;
                    // any new value of n_intervals runs the poll now
                    window.dash_clientside.set_props("__POLL__", {n_intervals: Date.now()});
                }
            }, 1000);
        }
        window.__sessionmwCountdown = countdown;
    }
    const icons = __ICONS__;
    const icon = {namespace: "dash_html_components", type: "Img",
                  props: {src: icons[status] || icons.error, alt: "", className: "sessionmw-icon-svg",
                          style: {width: "1.1em", height: "1.1em", verticalAlign: "-0.2em"}}};
    const steps = (said.steps || []).map(function (step) {
        return {namespace: "dash_html_components", type: "Li", props: {children: step}};
    });
    const actions = said.actions || [];
    const classes = "sessionmw-banner sessionmw-" + status + " sessionmw-tone-" + (said.tone || "error");
    if (bootstrap) {
        const colors = __COLORS__;
        return [{}, classes + " alert alert-" + (colors[status] || "secondary"),
                icon, said.title || "", message, steps, said.context || "",
                actions.indexOf("reconnect") >= 0 ? {} : hidden];
    }
    const style = Object.assign({}, styles.banner || {}, styles[status] || {});
    const reconnect = actions.indexOf("reconnect") >= 0 ? Object.assign({}, styles.button || {}) : hidden;
    return [style, classes, icon, said.title || "", message, steps, said.context || "", reconnect];
}
