function (report, config) {
    const styles = (config && config.styles) || {};
    const bootstrap = Boolean(config && config.theme === "bootstrap");
    const hidden = {display: "none"};
    if (!report || report.healthy || report.status === "healthy") {
        return [hidden, "sessionmw-banner", "", "", "", [], "", hidden];
    }
    const status = report.status || "error";
    if (bootstrap) {
        const colors = __COLORS__;
        const steps = (report.recovery || []).map(function (step) {
            return {namespace: "dash_html_components", type: "Li", props: {children: step}};
        });
        const icon = report.icon || "";
        let message = report.message || "";
        if (icon && message.indexOf(icon) === 0) {
            message = message.slice(icon.length).trim();
        }
        const color = colors[status] || "secondary";
        return [{}, "sessionmw-banner sessionmw-" + status + " alert alert-" + color,
                icon, report.title || "", message, steps, report.context || "",
                status === "disconnected" ? {} : hidden];
    }
    const style = Object.assign({}, styles.banner || {}, styles[status] || {});
    const steps = (report.recovery || []).map(function (step) {
        return {namespace: "dash_html_components", type: "Li", props: {children: step}};
    });
    const reconnect = status === "disconnected" ? Object.assign({}, styles.button || {}) : hidden;
    const icon = report.icon || "";
    let message = report.message || "";
    if (icon && message.indexOf(icon) === 0) {
        message = message.slice(icon.length).trim();  // the icon is shown once, in front
    }
    return [style, "sessionmw-banner sessionmw-" + status, icon, report.title || "",
            message, steps, report.context || "", reconnect];
}
