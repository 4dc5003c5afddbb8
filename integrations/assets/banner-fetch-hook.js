// Installed once per page (inside the poll): Dash requests refused because the session expired
// (401) or disconnected (503) put the server's report into the banner's health store at once;
// every callback response is counted when Dash reads its body, so that a poll answered meanwhile
// knows it may be stale.
// A request of this page that cannot reach the server at all says so in the banner at once; a
// Dash callback's then ends as a response that changes nothing but the banner, so Dash gives
// back every control it disabled while the request ran (a click on a dead server never leaves a
// button disabled), and the banner's retries (banner-render.js) find the server when it is back.
if (!window.__sessionmwFetch) {
    window.__sessionmwFetch = true;
    const original = window.fetch.bind(window);
    const unreachable = function () {
        const local = ["localhost", "127.0.0.1", "[::1]", "::1"].indexOf(window.location.hostname) >= 0;
        const said = (config && (local ? config.unreachable_local : config.unreachable)) || null;
        return {status: "error", healthy: false, unreachable: true, statement: said};
    };
    window.__sessionmwUnreachable = unreachable;
    const sameOrigin = function (url) {
        return url.indexOf("://") < 0 || url.indexOf(window.location.origin + "/") === 0;
    };
    // A callback response is counted when Dash reads its body: Dash applies what it carries (its
    // sideUpdate: the banner's report) in the same turn, before any health poll can start. Counted
    // when the fetch resolved, a poll started between the two (Dash reads the body later) took the
    // response for one it had seen; Dash then held the banner back while that poll ran (the poll
    // writes the banner's store) and drew the poll's older answer over the response's report.
    const counted = function (response) {
        const read = response.json.bind(response);
        response.json = function () {
            return read().then(function (data) {
                window.__sessionmwAnswers = (window.__sessionmwAnswers || 0) + 1;
                return data;
            });
        };
        return response;
    };
    window.fetch = async function (input, init) {
        const url = typeof input === "string" ? input : (input && input.url) || "";
        const callback = url.indexOf("_dash-update-component") >= 0;
        let response;
        try {
            response = await original(input, init);
        } catch (e) {
            if (!sameOrigin(url) || (e && e.name === "AbortError")) { throw e; }
            const report = unreachable();
            if (!callback) {
                window.__sessionmwAnswers = (window.__sessionmwAnswers || 0) + 1;
                window.dash_clientside.set_props("__STORE__", {data: report});
                throw e;
            }
            const body = {multi: true, response: {}, sideUpdate: {"__STORE__": {data: report}}};
            return counted(new Response(JSON.stringify(body), {
                status: 200, headers: {"Content-Type": "application/json"}
            }));
        }
        const refused = response.status === 401 || response.status === 503;
        if (refused && callback) {
            try {
                const body = await response.clone().json();
                if (body && body.status && body.message) {
                    // an expired session stays on screen until the page is refreshed
                    const report = Object.assign({sticky: response.status === 401}, body);
                    window.__sessionmwAnswers = (window.__sessionmwAnswers || 0) + 1;
                    window.dash_clientside.set_props("__STORE__", {data: report});
                }
            } catch (e) { /* not a sessionmw refusal */ }
        }
        // A health poll in flight meanwhile may hold an older answer than this response (banner-poll.js).
        return callback ? counted(response) : response;
    };
}
