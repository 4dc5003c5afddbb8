// Installed once per page (inside the poll): Dash requests refused because the session expired
// (401) or disconnected (503) put the server's report into the banner's health store at once.
if (!window.__sessionmwFetch) {
    window.__sessionmwFetch = true;
    const original = window.fetch.bind(window);
    window.fetch = async function (input, init) {
        const response = await original(input, init);
        const url = typeof input === "string" ? input : (input && input.url) || "";
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
