function (report, config) {
    // One voice: the server's statement (sessionmw.messages) when the report carries one; the
    // icon is drawn here, once, as inline SVG (no emoji font needed).
    const styles = (config && config.styles) || {};
    const bootstrap = Boolean(config && config.theme === "bootstrap");
    const hidden = {display: "none"};
    const said = report && report.statement;
    if (!report || !said) {
        return [hidden, "sessionmw-banner", "", "", "", [], "", hidden];
    }
    const status = said.status || "error";
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
                icon, said.title || "", said.message || "", steps, said.context || "",
                actions.indexOf("reconnect") >= 0 ? {} : hidden];
    }
    const style = Object.assign({}, styles.banner || {}, styles[status] || {});
    const reconnect = actions.indexOf("reconnect") >= 0 ? Object.assign({}, styles.button || {}) : hidden;
    return [style, classes, icon, said.title || "", said.message || "", steps, said.context || "", reconnect];
}
