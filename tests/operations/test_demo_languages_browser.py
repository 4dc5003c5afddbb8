"""The demo walked in German and in French, in headless chromium set to that language: a failing
action, the session disconnected, Reconnect, idle, expired. In every state the banner and the
alert speak the browser's language and none of the catalogue's English sentences is on screen
(the demo's own texts, its buttons and tables, are the app's words and stay English); at 420 px
the status area does not overflow the phone sideways. Sessions run on a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from support.browser import ALERT, BANNER, BROWSER_MARKS, THRESHOLD, WAIT, until
from support.chrome import chrome_options
from werkzeug.serving import make_server

from sessionmw import SessionManager
from sessionmw.demo import load_demo
from sessionmw.testing import FakeClock
from sessionmw.texts import Plural, catalogue
from sessionmw.translation import plain

pytestmark = BROWSER_MARKS

PHONE = (420, 900)
#: The catalogue's English sentences of four words or more (a short title such as "Session
#: active" can read the same in French), without emoji and placeholders.
ENGLISH = sorted(
    {
        plain(part.split("{")[0]).strip()
        for entry in catalogue()
        for part in ((entry.one, entry.other) if isinstance(entry, Plural) else (entry,))
        if len(part.split("{")[0].split()) >= 4
    }
)
#: What each state's banner says, by language.
SAID = {
    "de": {
        "error": "Sitzung läuft nicht",
        "disconnected": "Sitzung getrennt",
        "reconnected": "Wieder verbunden",
        "idle": "Sitzung inaktiv",
        "expired": "Sitzung abgelaufen",
    },
    "fr": {
        "error": "Session arrêtée",
        "disconnected": "Session déconnectée",
        "reconnected": "Reconnexion réussie",
        "idle": "Session inactive",
        "expired": "Session expirée",
    },
}
_OVERFLOW = "return document.documentElement.scrollWidth - window.innerWidth;"


class Walk:
    """The demo in a browser set to ``language``, and the person's eyes on it."""

    def __init__(
        self, driver: Any, manager: SessionManager, clock: FakeClock, backend: Any, shots: Path
    ) -> None:
        self.driver = driver
        self.manager = manager
        self.clock = clock
        self.backend = backend
        self.shots = shots

    def css(self, selector: str) -> list[Any]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def shown(self, selector: str) -> str:
        found = self.css(selector)
        return str(found[0].text) if found and found[0].is_displayed() else ""

    def wait(self, condition: Callable[[], object], msg: str) -> None:
        until(condition, timeout=WAIT, msg=msg)

    def wait_shown(self, selector: str, text: str) -> None:
        self.wait(lambda: text in self.shown(selector), f"{selector} never showed {text!r}")

    def click(self, selector: str) -> None:
        self.wait(lambda: self.css(selector), f"no {selector}")
        self.css(selector)[0].click()

    def session_id(self) -> str:
        cookie = self.driver.get_cookie("sessionmw")
        assert cookie is not None
        return str(cookie["value"])

    def errors(self) -> int:
        record = self.manager.get_session(self.session_id())
        return 0 if record is None else record.error_count

    def scan(self) -> None:
        self.click("#tab-scanner")
        self.click("#scan-run")

    def knob(self, value: str) -> None:
        self.click("#tab-faults")
        self.click(f"#fault-flags input[value='{value}']")

    def check(self, name: str, language: str) -> None:
        """No English sentence of the catalogue on screen; the status area fits a phone."""
        text = str(self.css("#react-entry-point")[0].text)
        english = [sentence for sentence in ENGLISH if sentence in text]
        assert english == [], f"{language} {name}: English on screen: {english}"
        self.driver.save_screenshot(str(self.shots / f"{language}-{name}.png"))
        self.driver.set_window_size(*PHONE)
        try:
            assert self.driver.execute_script(_OVERFLOW) <= 0, f"{language} {name}: wider than the phone"
            self.driver.save_screenshot(str(self.shots / f"{language}-{name}-phone.png"))
        finally:
            self.driver.set_window_size(1100, 900)


@pytest.fixture(name="demo", scope="module")
def _demo() -> Iterator[tuple[str, SessionManager, FakeClock, Any]]:
    """The demo on a fake clock with a health poll every half second, served on loopback."""
    module = load_demo()
    clock = FakeClock()
    manager = SessionManager(
        store="memory://", clock=clock, health_check_interval_seconds=0.5, max_error_threshold=THRESHOLD
    )
    backend = module.MarketBackend(sleep=lambda seconds: None)
    app = module.create_app(manager=manager, backend=backend, retry_sleep=lambda seconds: None)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", manager, clock, backend
    server.shutdown()
    thread.join(timeout=WAIT)
    manager.close()


@pytest.mark.parametrize("language", ["de", "fr"])
def test_the_demo_speaks_the_browsers_language_in_every_state(
    demo: tuple[str, SessionManager, FakeClock, Any], language: str, tmp_path: Path
) -> None:
    from selenium import webdriver

    url, manager, clock, backend = demo
    options = chrome_options()
    options.add_argument(f"--lang={language}")
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    driver = webdriver.Chrome(options=options)
    driver.set_window_size(1100, 900)
    walk = Walk(driver, manager, clock, backend, tmp_path)
    said = SAID[language]
    try:
        driver.get(url)
        walk.wait(lambda: walk.css("#scan-run"), "the demo did not load")
        walk.wait(lambda: driver.get_cookie("sessionmw") is not None, "no session cookie")
        walk.scan()
        walk.wait(lambda: walk.css("#scan-results"), "the scan gave no table")
        walk.check("healthy", language)

        walk.knob("down")
        walk.wait(lambda: backend.faults.backend_down, "the backend did not go down")
        for clicks in range(1, THRESHOLD + 1):
            walk.scan()
            recorded = clicks
            walk.wait(lambda: walk.errors() >= recorded, "the failure was not recorded")  # noqa: B023
            if clicks == 1:
                walk.wait_shown(BANNER, said["error"])
                walk.check("error", language)
        walk.wait_shown(BANNER, said["disconnected"])
        walk.check("disconnected", language)

        walk.knob("down")
        walk.wait(lambda: not backend.faults.backend_down, "the backend stayed down")
        walk.click("#tab-scanner")
        walk.click("#sessionmw-reconnect")
        walk.wait_shown(BANNER, said["reconnected"])
        walk.check("reconnected", language)
        walk.wait(lambda: walk.shown(BANNER) == "", "the confirmation stayed")

        clock.advance(301)
        walk.wait_shown(BANNER, said["idle"])
        walk.check("idle", language)

        clock.advance(31 * 60)
        walk.wait_shown(BANNER, said["expired"])
        walk.check("expired", language)
        assert walk.shown(ALERT) == "" or not [s for s in ENGLISH if s in walk.shown(ALERT)]
    finally:
        driver.quit()
