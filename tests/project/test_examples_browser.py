"""The Flask, WSGI and FastAPI examples in headless chromium, served by their own commands: the
error page, the disconnected banner, a refresh, Reconnect and its confirmation (and, for FastAPI,
a session that expires), at desktop and at 420 px phone width. At each step the page says what
the Dash banner says for the same state (its SVG icon, no emoji, no step that does not work on
that page), and the terminal logs one line per failure. Screenshots go to the test's tmp dir
(look at them when the pages change).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from support.browser import BROWSER_MARKS, WAIT, until
from support.servers import free_port, stop, wait_for_port

pytestmark = BROWSER_MARKS

ROOT = Path(__file__).resolve().parents[2]
PHONE = (420, 900)
DESKTOP = (1100, 900)
#: What no page may offer: a step that does not work there, advice about the user's network for a
#: failure inside the server, an emoji that renders as a box without an emoji font.
NEVER = ("refresh the page, to reconnect", "network", "inputs are kept", "come back after the refresh")
THRESHOLD = 5  # the examples use the default error threshold


@contextlib.contextmanager
def serve(script: str, log: Path, *options: str) -> Iterator[str]:
    """``python examples/<script> --port N OPTIONS`` without SESSIONMW_* settings, its terminal
    output in ``log``; yields its base URL; stopped by its pid."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIONMW_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / script), "--port", str(port), *options],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
    try:
        wait_for_port(proc, port, 30.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc, 15)


@pytest.fixture(name="example")
def _example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The example ``request.param`` served (see :func:`serve`); yields its base URL and the file
    its terminal output goes to."""
    log = tmp_path / "terminal.log"
    with serve(request.param, log) as base:
        yield base, log


class Page:
    """The browser on an example."""

    def __init__(self, duo: Any, base: str, shots: Path) -> None:
        self.duo, self.base, self.shots = duo, base, shots
        self.driver = duo.driver

    def open(self, path: str = "/") -> None:
        self.driver.get(self.base + path)

    def text(self) -> str:
        """The page's text, read in one script (a single snapshot of one document); "" while a
        navigation replaces the page (the caller's ``until`` asks again)."""
        return self._read("return document.body ? document.body.innerText : '';")

    def banner(self) -> str:
        """The banner's text; "" without a banner, or while a navigation replaces the page."""
        return self._read(
            "var banner = document.querySelector('.sessionmw-banner');"
            "return banner ? banner.innerText : '';"
        )

    def health(self) -> str:
        """The session's health status, asked the way a page's own poll does (``?page=1``: never
        counted as activity)."""
        script = (
            "var done = arguments[arguments.length - 1];"
            "fetch('/_sessionmw/health?page=1', {headers: {Accept: 'application/json'}})"
            ".then(function (r) { return r.json(); })"
            ".then(function (j) { done(j.session.status); }, function () { done(''); });"
        )
        try:
            return str(self.driver.execute_async_script(script) or "")
        except WebDriverException:
            return ""

    def _read(self, script: str) -> str:
        try:
            return str(self.driver.execute_script(script) or "")
        except WebDriverException:  # the document went away while the script ran
            return ""

    def click(self, css: str) -> None:
        """Click ``css`` once the page that has it is loaded, then wait until the click's
        navigation has replaced that page: every later read is of the new page, never of the old
        one on its way out (the old page may show the same title)."""
        old = self.driver.find_element(By.TAG_NAME, "html")

        def clicked() -> bool:
            try:
                self.driver.find_element(By.CSS_SELECTOR, css).click()
            except WebDriverException:
                return False
            return True

        until(clicked, timeout=WAIT, msg=f"no {css} to click")
        until(lambda: _gone(old), timeout=WAIT, msg=f"{css}: the click did not load a page")

    def check(self, name: str, *, title: str) -> None:
        """The page shows ``title`` with the SVG icon and nothing of :data:`NEVER`, at desktop and
        at phone width (:meth:`fits_a_phone`); screenshots of both."""
        until(lambda: title in self.banner(), timeout=WAIT, msg=f"{name}: no {title!r} on the page")
        said = " ".join(self.banner().split())
        assert not [phrase for phrase in NEVER if phrase in said.lower()], f"{name}: {said}"
        assert not any(ord(char) > 0x2000 and char not in "—’“”" for char in said), f"{name}: emoji in {said}"
        icons = self.driver.find_elements(By.CSS_SELECTOR, ".sessionmw-banner img.sessionmw-icon")
        assert len(icons) == 1 and str(icons[0].get_attribute("src")).startswith("data:image/svg+xml")
        assert icons[0].size["width"] > 0, f"{name}: the icon is not drawn"
        self.driver.find_element(By.TAG_NAME, "body").screenshot(str(self.shots / f"{name}.png"))
        self.fits_a_phone(name, said)

    def fits_a_phone(self, name: str, said: str = "") -> None:
        """At 420 px the banner says ``said`` (every word kept) and nothing is wider than the
        screen; a screenshot."""
        self.driver.set_window_size(*PHONE)
        try:
            assert " ".join(self.banner().split()) == said, f"{name}: the phone drops words"
            wide = "return document.documentElement.scrollWidth <= window.innerWidth;"
            assert self.driver.execute_script(wide), f"{name}: wider than the phone"
            self.driver.find_element(By.TAG_NAME, "body").screenshot(str(self.shots / f"{name}-phone.png"))
        finally:
            self.driver.set_window_size(*DESKTOP)


def _gone(element: Any) -> bool:
    """Whether ``element``'s document has been replaced."""
    try:
        element.tag_name  # noqa: B018 (asks the browser)
    except WebDriverException:
        return True
    return False


def _walk(page: Page, fail: str, log: Path, *, switch: bool) -> None:
    """Fail until disconnected (the error page each time, and its way back), refresh, Reconnect."""
    page.open("/")
    page.driver.find_element(By.TAG_NAME, "h1")
    assert page.banner() == ""
    page.fits_a_phone("page")  # healthy: no banner, nothing wider than the phone
    if switch:  # the Flask example: the backend is switched off on the page
        page.click("form[action='/backend/off'] button")
        until(lambda: "backend off" in page.text(), timeout=WAIT)
    page.click(f"a[href='{fail}']")
    page.check("error-page", title="Connection problem")
    assert f"After {THRESHOLD - 1} more errors" in page.banner() and "Reconnect" not in page.banner()
    page.click(".sessionmw-back a")  # the way back: the page loads (a success: the count starts over)
    until(lambda: page.driver.find_elements(By.TAG_NAME, "h1"), timeout=WAIT)
    page.click(f"a[href='{fail}']")
    for _ in range(THRESHOLD - 1):  # tried again and again, until the session disconnects
        page.driver.refresh()
    page.check("error-page-disconnected", title="Session disconnected")
    assert page.driver.find_elements(By.CSS_SELECTOR, ".sessionmw-banner form button")  # Reconnect here too
    page.click(".sessionmw-back a")
    page.check("banner-disconnected", title="Session disconnected")
    page.driver.refresh()  # a refresh does not reconnect, and the banner never said it would
    page.check("banner-disconnected-refreshed", title="Session disconnected")
    if switch:
        page.click("form[action='/backend/on'] button")
        until(lambda: "backend on" in page.text(), timeout=WAIT)
    page.click(".sessionmw-banner form button")  # Reconnect
    page.check("banner-reconnected", title="Reconnected")
    assert "Session: active" in page.text() or "is active" in page.text()
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    failures = [line for line in lines if line.startswith("WARNING") and " failed: " in line]
    assert len(failures) == THRESHOLD + 1, lines  # one line per failure
    assert not [line for line in lines if "Traceback" in line or "HTTP/1.1" in line], lines


@pytest.mark.parametrize("example", ["flask_app.py"], indirect=True)
def test_flask_example_error_disconnect_and_reconnect(
    dash_duo: Any, example: tuple[str, Path], tmp_path: Path
) -> None:
    """The Flask example: quotes fail with the backend switched off, until the session disconnects."""
    base, log = example
    dash_duo.driver.set_window_size(*DESKTOP)
    _walk(Page(dash_duo, base, tmp_path), "/api/quote", log, switch=True)


@pytest.mark.parametrize("example", ["wsgi_app.py"], indirect=True)
def test_wsgi_example_error_disconnect_and_reconnect(
    dash_duo: Any, example: tuple[str, Path], tmp_path: Path
) -> None:
    """The WSGI example: /fail fails every time, until the session disconnects."""
    base, log = example
    dash_duo.driver.set_window_size(*DESKTOP)
    _walk(Page(dash_duo, base, tmp_path), "/fail", log, switch=False)


@pytest.mark.parametrize("example", ["fastapi_app.py"], indirect=True)
def test_fastapi_example_error_disconnect_reconnect_and_expiry(
    dash_duo: Any, example: tuple[str, Path], tmp_path: Path
) -> None:
    """The FastAPI example (uvicorn): quotes fail with the backend switched off, until the session
    disconnects; Reconnect brings it back. Then, served with a timeout of 1.8 s, a session left
    alone expires: the page says so once, and goes on with a new session."""
    base, log = example
    dash_duo.driver.set_window_size(*DESKTOP)
    _walk(Page(dash_duo, base, tmp_path), "/api/quote", log, switch=True)
    with serve("fastapi_app.py", tmp_path / "terminal-expiry.log", "--timeout", "0.03") as short:
        page = Page(dash_duo, short, tmp_path)
        page.open("/")
        page.open("/")  # the second request brings the new id back: the session is stored
        assert "Session: active" in page.text() and page.banner() == ""
        # Left alone (the health endpoint never counts as activity) until the store says expired:
        # a bounded wait of a little more than the timeout, no request that would renew it.
        until(lambda: page.health() == "expired", timeout=10, msg="the session did not expire")
        page.driver.refresh()
        page.check("banner-expired", title="Session expired")
        assert "Reconnect" not in page.banner()
        page.driver.refresh()  # told once: the new session is served without the banner
        until(lambda: "Session: active" in page.text() and page.banner() == "", timeout=WAIT)
