"""The server-rendered banner looks like the Dash banner: one stylesheet, the same colours."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sessionmw import SessionManager
from sessionmw.integrations.dash_banner import STYLES
from sessionmw.integrations.style import stylesheet

_KEYS = {"background": "background", "borderColor": "border-color", "color": "color"}


def _rule(selector: str) -> dict[str, str]:
    """The declarations for ``selector`` at full width, merged in order (the later rule wins)."""
    declared: dict[str, str] = {}
    wide = stylesheet().split("@media")[0]
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", wide):
        if selector in [part.strip() for part in selectors.split(",")]:
            pairs = (item.split(":", 1) for item in body.split(";") if ":" in item)
            declared.update({name.strip(): value.strip() for name, value in pairs})
    assert declared, f"no rule for {selector}"
    return declared


@pytest.mark.parametrize(
    "status", ["idle", "disconnected", "expired", "not_found", "degraded", "reconnected"]
)
def test_status_colours_match_the_dash_banner(status: str) -> None:
    """Each status has the Dash banner's background, border and text colour."""
    rule = _rule(f".sessionmw-{status}")
    assert {css: rule[css] for css in _KEYS.values()} == {_KEYS[k]: v for k, v in STYLES[status].items()}


def test_error_banner_and_error_page() -> None:
    """The error banner is amber as in Dash; a friendly error page is red as Dash's alert."""
    assert _rule(".sessionmw-banner.sessionmw-error")["background"] == STYLES["error"]["background"]
    assert _rule(".sessionmw-error")["background"] == STYLES["alert"]["background"]


def test_compact_at_phone_width() -> None:
    """The stylesheet has a phone-width rule for the banner."""
    assert re.search(r"@media \(max-width: \d+px\)\s*\{\s*\.sessionmw-banner", stylesheet())


def test_error_html_has_one_error_class() -> None:
    """A friendly error's HTML names its class once (it was ``sessionmw-error sessionmw-error``)."""
    from sessionmw.rendering import format_error
    from sessionmw.translation import translate

    html = format_error(translate(ConnectionError("x")), "html")
    assert 'class="sessionmw-error"' in html and "sessionmw-error sessionmw-error" not in html


def test_friendly_error_page_is_styled(manager: SessionManager) -> None:
    """The middleware's HTML error page carries the banner stylesheet (no unstyled Times text)."""
    from werkzeug.test import Client

    from sessionmw.integrations.wsgi import SessionMiddleware

    def failing(environ: Any, start_response: Any) -> Any:
        raise ConnectionError("backend at 10.0.0.7 refused")

    page = Client(SessionMiddleware(failing, manager=manager, secret_key="k")).get(
        "/", headers={"Accept": "text/html"}
    )
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and ".sessionmw-error" in text and "<style>" in text
    assert "10.0.0.7" not in text
