// Installed once per page (inside the poll): Dash requests refused because the session expired
// (401) or disconnected (503) put the server's report into the banner's health store at once;
// every callback response is counted, so that a poll answered meanwhile knows it may be stale.
if (!window.__sessionmwFetch) {
    window.__sessionmwFetch = true;
    const original = window.fetch.bind(window);
    window.fetch = async function (input, init) {
        const response = await original(input, init);
        const url = typeof input === "string" ? input : (input && input.url) || "";
        if (url.indexOf("_dash-update-component") >= 0) {
            // Counted as it arrives, before Dash applies it: a health poll that was in flight
            // meanwhile may hold an older answer than this response (banner-poll.js).
            window.__sessionmwAnswers = (window.__sessionmwAnswers || 0) + 1;
        }
        const refused = response.status === 401 || response.status === 503;
        if (refused && url.indexOf("_dash-update-component") >= 0) {
            try {
                const body = await response.clone().json();
                if (body && body.status && body.message) {
                    // an expired session stays on screen until the page is refreshed
                    const report = Object.assign({sticky: response.status === 401}, body);
                    window.dash_clientside.set_props("__STORE__", {data: report});
                }
            } catch (e) { /* not a sessionmw refusal */ }
        }
        return response;
    };
}
