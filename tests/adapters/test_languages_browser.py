"""Every shipped language in headless chromium at 420 px: the Flask banner (disconnected, with its
Reconnect button) and the error page fit the phone's width, and a browser set to German, French
or Spanish reads none of the catalogue's English sentences. A screenshot per language and page
is saved in the test's tmp dir."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string
from support.browser import BROWSER_MARKS, WAIT, until
from support.chrome import chrome_options
from werkzeug.serving import make_server

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW
from sessionmw.texts import Plural, catalogue
from sessionmw.translation import plain

pytestmark = BROWSER_MARKS

PHONE_WIDTH = 420
THRESHOLD = 2
#: The catalogue's English sentences long enough to be told apart from a translation (a title
#: such as "Session active" is French too).
ENGLISH = sorted(
    {
        plain(part.split("{")[0]).strip()
        for entry in catalogue()
        for part in ((entry.one, entry.other) if isinstance(entry, Plural) else (entry,))
        if len(part.split("{")[0].split()) >= 4
    }
)
#: The page's width when nothing overflows it sideways.
_OVERFLOW = "return document.documentElement.scrollWidth - window.innerWidth;"


@pytest.fixture(name="site", scope="module")
def _site() -> Iterator[tuple[str, SessionManager]]:
    """A Flask app with the banner on its page and a route that fails, served on loopback."""
    manager = SessionManager(store="memory://", max_error_threshold=THRESHOLD)
    app = Flask(__name__)

    @app.get("/")
    def page() -> str:
        return render_template_string(
            '<!doctype html><html><head><meta name="viewport" content="width=device-width, '
            'initial-scale=1"></head><body>{{ sessionmw_banner() }}<main>prices</main></body></html>'
        )

    @app.get("/boom")
    def boom() -> str:
        raise TimeoutError("the prices service took too long")

    SessionMW(app, manager=manager, secret_key="browser")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", manager
    server.shutdown()
    thread.join(timeout=WAIT)
    manager.close()


def _browser(language: str) -> Any:
    from selenium import webdriver

    options = chrome_options()
    options.add_argument(f"--lang={language}")
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    driver = webdriver.Chrome(options=options)
    driver.set_window_size(PHONE_WIDTH, 900)
    return driver


@pytest.mark.parametrize("language", ["en", "de", "fr", "es"])
def test_banner_and_error_page_fit_a_phone_in_every_language(
    site: tuple[str, SessionManager], language: str, tmp_path: Path
) -> None:
    base, manager = site
    driver = _browser(language)
    try:
        driver.get(base + "/")
        cookie = driver.get_cookie("sessionmw")
        assert cookie is not None
        sid = cookie["value"]
        manager.create_session(sid) if manager.get_session(sid) is None else None
        for _ in range(THRESHOLD):
            manager.record_error(sid, ConnectionError("down"))
        driver.get(base + "/")
        until(lambda: driver.find_elements("css selector", ".sessionmw-banner button"), timeout=WAIT)
        pages = {"banner": driver.find_element("css selector", "body").text}
        driver.save_screenshot(str(tmp_path / f"banner-{language}.png"))
        assert driver.execute_script(_OVERFLOW) <= 0, f"{language}: the banner is wider than the phone"

        manager.reconnect(sid)
        driver.get(base + "/boom")
        until(lambda: driver.find_elements("css selector", ".sessionmw-back"), timeout=WAIT)
        pages["error page"] = driver.find_element("css selector", "body").text
        driver.save_screenshot(str(tmp_path / f"error-{language}.png"))
        assert driver.execute_script(_OVERFLOW) <= 0, f"{language}: the error page is wider than the phone"
        assert driver.find_element("css selector", "html").get_attribute("lang") == language
    finally:
        driver.quit()
    for name, text in pages.items():
        english = [sentence for sentence in ENGLISH if sentence in text]
        if language == "en":
            assert english, f"the English {name} shows no catalogue sentence: {text!r}"
        else:
            assert english == [], f"{language} {name} shows English: {english}"
