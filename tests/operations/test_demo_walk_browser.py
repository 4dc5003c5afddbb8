"""A person's walk through the demo in headless chromium: every knob and every state.

At each step the test asserts what is on screen, that no two messages on the page contradict
each other, and what the browser console holds; it saves a screenshot per step in the test's tmp
dir (one per Dash backend: the walk runs on Flask, FastAPI and Quart), and, on Flask, in
``$SESSIONMW_SCREENSHOT_DIR`` when set (``docs/img/`` is refreshed that way, at desktop and at
420 px phone width). The sessions run on a fake clock: idle and expiry need no
waiting. The slow backend waits on an event the test releases.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from support.browser import ALERT, BANNER, BROWSER_MARKS, SERVERS, THRESHOLD, WAIT, serve, until
from support.servers import demo_server, free_port

from sessionmw import SessionManager, SessionState
from sessionmw.demo import DEMO_POLL_SECONDS, load_demo
from sessionmw.testing import FakeClock

pytestmark = BROWSER_MARKS

PHONE = (420, 900)
DESKTOP = (1100, 900)
#: The screenshots that ``docs/img/`` keeps (the others stay in the test's tmp dir).
CURATED = frozenset(
    {
        "demo-scanner",
        "demo-slow",
        "demo-backtests",
        "demo-phone",
        "demo-paused",
        "alert-backend-down",
        "banner-error",
        "banner-error-phone",
        "banner-disconnected",
        "banner-disconnected-phone",
        "banner-idle",
        "banner-expired",
        "banner-not-found",
        "banner-reconnected",
    }
)
#: Phrases that must never stand next to each other on the page: (shown, contradicted by).
CONTRADICTIONS = (
    ("Session disconnected", "Try the action again"),
    ("Session expired", "Try the action again"),
    ("Session expired", "Reconnect"),
    ("Session not found", "Try the action again"),
)


#: True when a table's box shows all of it (no sideways scroll).
_FITS = "return arguments[0].parentElement.scrollWidth <= arguments[0].parentElement.clientWidth;"
#: The number of lines an inline element takes ("5 of 5 done" on one line, not "5 of 5 / done").
_LINES = "return arguments[0].getClientRects().length;"
#: An element's opacity as drawn.
_OPACITY = "return parseFloat(window.getComputedStyle(arguments[0]).opacity);"


def looks_unavailable(duo: Any, selector: str = "#scan-run") -> bool:
    """Whether the action button ``selector`` looks unavailable (faded) while it stays enabled: the
    page's look while the server would refuse the action (issue 27: it looked active)."""
    button = duo.find_element(selector)
    return bool(button.is_enabled()) and float(duo.driver.execute_script(_OPACITY, button)) < 0.6


def _words(text: str) -> str:
    """``text``'s words, whatever the line breaks; a countdown's seconds do not count."""
    return re.sub(r"\d+ seconds?", "N seconds", " ".join(text.split()))


@dataclasses.dataclass
class Walk:
    """The demo under test and the person's eyes on it."""

    duo: Any
    manager: SessionManager
    clock: FakeClock
    backend: Any
    release: threading.Event
    shots: Path
    steps: list[str] = dataclasses.field(default_factory=list)
    server: str = "flask"

    def session_id(self) -> str:
        cookie = self.duo.driver.get_cookie("sessionmw")
        assert cookie is not None, "the browser has no session cookie"
        return str(cookie["value"])

    def shown(self, selector: str) -> str:
        """The text of ``selector`` ('' when hidden or absent)."""
        found = self.duo.find_elements(selector)
        return str(found[0].text) if found and found[0].is_displayed() else ""

    def wait_shown(self, selector: str, text: str) -> None:
        try:
            until(lambda: text in self.shown(selector), timeout=WAIT)
        except Exception:
            raise AssertionError(f"{selector} never showed {text!r}: {self.shown(selector)!r}") from None

    def wait_hidden(self, selector: str) -> None:
        until(lambda: self.shown(selector) == "", timeout=WAIT, msg=f"{selector} stayed on screen")

    def page_text(self) -> str:
        return str(self.duo.find_element("#react-entry-point").text)

    def contradictions(self) -> list[tuple[str, str]]:
        """The pairs of :data:`CONTRADICTIONS` on the page now."""
        text = self.page_text()
        return [(shown, other) for shown, other in CONTRADICTIONS if shown in text and other in text]

    def check(self, name: str, *, phone: bool = False) -> None:
        """One step done: nothing on the page contradicts anything else; save the screenshot."""
        assert self.contradictions() == [], name
        self.steps.append(name)
        status_only = name.startswith(("banner-", "alert-"))
        self.shoot(name, "#sessionmw-status" if status_only else "#react-entry-point")
        if phone:
            said = _words(self.shown(BANNER))
            self.duo.driver.set_window_size(*PHONE)
            try:
                banner_height = self.duo.find_element("#sessionmw-status").size["height"]
                assert banner_height < PHONE[1] / 2, f"{name}: the messages fill the phone's screen"
                # A phone hears all the banner says ("After N more errors", "it expires in ...").
                assert _words(self.shown(BANNER)) == said, f"{name}: the phone's banner drops words"
                for table in self.duo.find_elements("#scan-results, #bt-results-table"):
                    if table.is_displayed():  # every column on screen, no sideways scroll
                        assert self.duo.driver.execute_script(_FITS, table), f"{name}: the table is cut off"
                for label in self.duo.find_elements("#bt-progress-label"):
                    if label.is_displayed() and label.text:  # "5 of 5 done" on one line
                        lines = self.duo.driver.execute_script(_LINES, label)
                        assert lines == 1, f"{name}: {label.text!r} takes {lines} lines"
                self.shoot(f"{name}-phone")
            finally:
                self.duo.driver.set_window_size(*DESKTOP)

    def shoot(self, name: str, selector: str = "#react-entry-point") -> None:
        path = self.shots / f"{name}.png"
        self.duo.find_element(selector).screenshot(str(path))
        target = os.environ.get("SESSIONMW_SCREENSHOT_DIR")
        if target and name in CURATED and self.server == "flask":  # docs/img shows Flask's
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(target) / path.name)

    def tab(self, name: str) -> None:
        self.duo.find_element(f"#tab-{name}").click()

    def knob(self, value: str) -> None:
        """Tick or untick one fault box, as a person clicks it."""
        self.tab("faults")
        self.duo.wait_for_element(f"#fault-flags input[value='{value}']", timeout=WAIT).click()

    def box_ticked(self, value: str) -> bool:
        return bool(self.duo.find_element(f"#fault-flags input[value='{value}']").is_selected())

    def scan(self) -> None:
        self.tab("scanner")
        self.duo.wait_for_element("#scan-run", timeout=WAIT).click()

    def errors(self) -> int:
        record = self.manager.get_session(self.session_id())
        return 0 if record is None else record.error_count

    def severe(self) -> list[dict[str, Any]]:
        """The browser console's SEVERE entries since the last call."""
        entries: list[dict[str, Any]] = self.duo.get_logs()
        self.duo.reset_log_timestamp()
        return entries


def _open_demo(
    dash_duo: Any, tmp_path: Path, *, poll_seconds: float, slow: bool, server: str = "flask"
) -> Iterator[Walk]:
    """The demo on a fake clock, with a health poll every ``poll_seconds``, in a fresh browser.

    :param slow: the backend's waits hold until the test sets ``walk.release``; otherwise they pass.
    :param server: Dash's backend: ``flask``, ``fastapi`` or ``quart`` (uvicorn or Hypercorn in
        dash.testing's thread, in this process).
    """
    module = load_demo()
    clock = FakeClock()
    manager = SessionManager(
        store="memory://",
        clock=clock,
        health_check_interval_seconds=poll_seconds,
        max_error_threshold=THRESHOLD,
    )
    release = threading.Event()
    if not slow:
        release.set()
    backend = module.MarketBackend(sleep=lambda seconds: release.wait(WAIT))
    app = module.create_app(manager=manager, backend=backend, retry_sleep=lambda seconds: None, server=server)
    serve(dash_duo, app)
    dash_duo.driver.set_window_size(*DESKTOP)
    dash_duo.wait_for_element("#scan-run", timeout=WAIT)
    walk = Walk(dash_duo, manager, clock, backend, release, tmp_path, server=server)
    until(lambda: dash_duo.driver.get_cookie("sessionmw") is not None, timeout=WAIT)
    yield walk
    release.set()
    manager.close()


@pytest.fixture(name="walk", params=SERVERS)
def _walk(dash_duo: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Walk]:
    """The demo on a fake clock, a backend whose slowness the test controls, a fresh browser; on
    Dash's Flask, FastAPI and Quart backends (issue 25: the walk on every backend)."""
    yield from _open_demo(dash_duo, tmp_path, poll_seconds=0.5, slow=True, server=str(request.param))


def test_walk_healthy_knobs_slow_and_bad_data(walk: Walk) -> None:
    """Healthy page, every knob (fresh page, countdown), slow work, bad data, errors per action."""
    duo = walk.duo
    # Healthy: no banner, no alert; the header's icon is an image, not an emoji.
    assert walk.shown(BANNER) == "" and walk.shown(ALERT) == ""
    header = duo.find_element("h1")
    assert header.text == "Stock analysis" and header.find_elements(By.TAG_NAME, "img")
    walk.scan()
    duo.wait_for_element("#scan-results", timeout=WAIT)
    walk.check("demo-scanner", phone=True)
    duo.driver.set_window_size(*PHONE)
    walk.shoot("demo-phone")
    duo.driver.set_window_size(*DESKTOP)

    # A fresh page shows the boxes as the backend has them.
    walk.backend.faults.bad_data = True
    duo.driver.refresh()
    duo.wait_for_element("#scan-run", timeout=WAIT)
    walk.tab("faults")
    until(lambda: walk.box_ticked("bad-data"), timeout=WAIT, msg="a fresh page shows bad data unticked")
    walk.wait_shown("#fault-summary", "Active faults: bad data")
    walk.knob("bad-data")  # untick: the backend follows
    until(lambda: not walk.backend.faults.bad_data, timeout=WAIT, msg="unticking left the fault on")
    walk.wait_shown("#fault-summary", "Active faults: none")

    # "Fail the next 2 calls" counts down as the calls are used (the scanner retries through them).
    duo.find_element("#fault-transient").click()
    walk.wait_shown("#fault-summary", "next 2 calls fail")
    walk.check("knobs-transient", phone=True)
    walk.scan()
    until(lambda: walk.backend.faults.transient_failures == 0, timeout=WAIT)
    assert walk.shown(ALERT) == ""
    walk.tab("faults")
    walk.wait_shown("#fault-summary", "Active faults: none")

    # Slow: the button is disabled and a spinner shows until the answer comes.
    walk.knob("slow")
    until(lambda: walk.backend.faults.latency_seconds > 0, timeout=WAIT)
    walk.release.clear()
    walk.scan()
    until(lambda: not duo.find_element("#scan-run").is_enabled(), timeout=WAIT, msg="Scan stayed enabled")
    until(
        lambda: duo.find_elements("#scan-loading .dash-spinner, #scan-loading [class*='loading']"),
        timeout=WAIT,
        msg="no loading indicator",
    )
    walk.check("demo-slow", phone=True)
    walk.release.set()
    until(lambda: duo.find_element("#scan-run").is_enabled(), timeout=WAIT, msg="Scan stayed disabled")
    duo.wait_for_element("#scan-results", timeout=WAIT)
    walk.knob("slow")
    until(lambda: walk.backend.faults.latency_seconds == 0, timeout=WAIT)

    # Bad data: the alert names it, and the old table does not stay looking current.
    walk.knob("bad-data")
    until(lambda: walk.backend.faults.bad_data, timeout=WAIT)
    walk.scan()
    walk.wait_shown(BANNER, "Data not available")  # the failure, folded into the banner
    assert walk.shown(ALERT) == ""
    until(lambda: not duo.find_elements("#scan-results"), timeout=WAIT, msg="the old table stayed")
    walk.wait_shown("#scan-output", "this scan failed")
    assert "After 2 more errors in a row" in walk.shown(BANNER)
    walk.check("banner-error", phone=True)
    assert walk.errors() == 1

    # One click on "Run backtests" with bad data: the progress poll stops, one error is counted.
    walk.tab("backtests")
    duo.wait_for_element("#bt-run", timeout=WAIT).click()
    walk.wait_shown("#bt-progress-label", "stopped after 0 of 5")
    # The start succeeded (a success clears the count), the poll's failure counted once.
    assert walk.errors() == 1
    record = walk.manager.get_session(walk.session_id())
    assert record is not None and record.state is SessionState.ERROR
    walk.check("demo-backtests-stopped", phone=True)
    assert walk.severe() == []

    # Fixed: the backtests run to the end.
    walk.knob("bad-data")
    until(lambda: not walk.backend.faults.bad_data, timeout=WAIT)
    walk.tab("backtests")
    duo.wait_for_element("#bt-run", timeout=WAIT).click()
    duo.wait_for_text_to_equal("#bt-progress-label", "5 of 5 done", timeout=WAIT)
    walk.wait_hidden(BANNER)
    walk.check("demo-backtests", phone=True)
    assert walk.severe() == []

    # A new run starts from an empty bar at once, while its start is still on its way: not the
    # last run's full bar and "5 of 5 done" beside the spinner (issue 27).
    walk.backend.faults.latency_seconds = 1  # the start waits until the test releases it
    walk.release.clear()
    duo.find_element("#bt-run").click()
    until(
        lambda: (
            duo.find_element("#bt-progress").get_attribute("value") == "0"
            and walk.shown("#bt-progress-label") == ""
        ),
        timeout=WAIT,
        msg="the new run shows the last run's bar",
    )
    assert not duo.find_element("#bt-run").is_enabled()  # it is running: the start has not answered
    walk.release.set()
    duo.wait_for_text_to_equal("#bt-progress-label", "5 of 5 done", timeout=WAIT)
    walk.backend.faults.latency_seconds = 0


def test_walk_disconnect_knobs_reconnect_idle(walk: Walk) -> None:
    """Backend down until disconnected; the knobs still work; Reconnect; idle and back."""
    duo = walk.duo
    walk.knob("down")
    until(lambda: walk.backend.faults.backend_down, timeout=WAIT)
    for clicks in range(1, THRESHOLD + 1):
        walk.scan()
        until(lambda n=clicks: walk.errors() >= n, timeout=WAIT, msg="the failure was not recorded")
        if clicks == 1:
            walk.wait_shown(BANNER, "Session not running")
            walk.check("alert-backend-down", phone=True)
    walk.wait_shown(BANNER, "Session disconnected")
    walk.check("banner-disconnected", phone=True)
    # Scan is refused now: it looks it (faded), and stays clickable for the banner's answer.
    until(lambda: looks_unavailable(duo), timeout=WAIT, msg="Scan looks usable while disconnected")

    # The operator's knob works while the session is disconnected, and shows the truth.
    walk.knob("down")
    until(lambda: not walk.backend.faults.backend_down, timeout=WAIT, msg="unticking was refused")
    walk.wait_shown("#fault-summary", "Active faults: none")
    assert not walk.box_ticked("down")
    record = walk.manager.get_session(walk.session_id())
    assert record is not None and record.state is SessionState.DISCONNECTED

    # Reconnect: the banner goes without a reload; the next scan works.
    walk.tab("scanner")
    duo.find_element("#sessionmw-reconnect").click()
    walk.wait_shown(BANNER, "Reconnected")  # confirmed briefly, then gone
    walk.check("banner-reconnected")
    walk.wait_hidden(BANNER)
    record = walk.manager.get_session(walk.session_id())
    assert record is not None and record.state is SessionState.ACTIVE
    assert not looks_unavailable(duo)
    walk.scan()
    duo.wait_for_element("#scan-results", timeout=WAIT)

    # Idle after five quiet minutes; activity clears it.
    walk.clock.advance(301)
    walk.wait_shown(BANNER, "Session idle")
    assert "0 minutes" not in walk.shown(BANNER) and "1 minutes" not in walk.shown(BANNER)
    walk.check("banner-idle", phone=True)
    walk.scan()
    walk.wait_hidden(BANNER)
    assert walk.severe() == []


def test_walk_expired_and_not_found(
    walk: Walk, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Expired: refused until a refresh, the knobs still work; not found after a restart: refused
    until a refresh too, nothing counted, nothing logged."""
    duo = walk.duo
    field = duo.find_element("#scan-symbols")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("WAYNE, UMBRL")
    walk.scan()
    duo.wait_for_element("#scan-results", timeout=WAIT)
    walk.clock.advance(31 * 60)
    walk.wait_shown(BANNER, "Session expired")
    assert "Refresh the page" in walk.shown(BANNER)
    calls = walk.backend.calls
    for _ in range(2):  # the second click is refused too: no silent new session
        walk.scan()
        walk.wait_shown(BANNER, "Session expired")
        until(lambda: walk.duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
    assert walk.backend.calls == calls
    assert looks_unavailable(duo), "Scan looks usable on an expired session"
    walk.check("banner-expired", phone=True)
    walk.knob("bad-data")  # the operator's knob still works
    until(lambda: walk.backend.faults.bad_data, timeout=WAIT, msg="the knob was refused")
    walk.knob("bad-data")
    until(lambda: not walk.backend.faults.bad_data, timeout=WAIT)

    # A refresh starts a new session; the typed symbols come back.
    duo.driver.refresh()
    duo.wait_for_element("#scan-run", timeout=WAIT)
    walk.wait_hidden(BANNER)
    until(lambda: duo.find_element("#scan-symbols").get_attribute("value") == "WAYNE, UMBRL", timeout=WAIT)
    walk.scan()
    duo.wait_for_element("#scan-results", timeout=WAIT)

    # The server forgot the session (a restart): the banner says so and nothing is counted.
    lost = walk.session_id()
    walk.manager.delete_session(lost)
    walk.clock.advance(31 * 60)
    walk.wait_shown(BANNER, "Session not found")
    walk.check("banner-not-found", phone=True)
    until(lambda: looks_unavailable(duo), timeout=WAIT, msg="Scan looks usable on a lost session")
    assert walk.severe() == []

    # A click is refused like an expired session's, every time: the backend (down: a click that
    # ran would fail and count) is not called, no new session starts behind the user's back.
    caplog.set_level(logging.DEBUG, logger="sessionmw")
    caplog.clear()
    capsys.readouterr()
    walk.backend.faults.backend_down = True
    calls = walk.backend.calls
    for _ in range(2):
        walk.scan()
        walk.wait_shown(BANNER, "Session not found")
        until(lambda: walk.duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
    assert walk.backend.calls == calls
    assert walk.session_id() == lost and walk.manager.get_session(lost) is None
    assert [record.session_id for record in walk.manager.store.records() if record.error_count] == []
    assert walk.contradictions() == [] and walk.severe() == []
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
    assert "Traceback" not in capsys.readouterr().err

    # A refresh recovers: a new session, the click runs on it.
    walk.backend.faults.backend_down = False
    duo.driver.refresh()
    duo.wait_for_element("#scan-run", timeout=WAIT)
    walk.wait_hidden(BANNER)
    assert walk.session_id() != lost
    walk.scan()
    until(lambda: walk.backend.calls > calls, timeout=WAIT, msg="the click after the refresh did not run")
    duo.wait_for_element("#scan-results", timeout=WAIT)
    assert walk.shown(ALERT) == "" and walk.errors() == 0


@pytest.fixture(name="slow_poll")
def _slow_poll(dash_duo: Any, tmp_path: Path) -> Iterator[Walk]:
    """The demo with a poll that never comes in time: whatever changes, a response carried it."""
    yield from _open_demo(dash_duo, tmp_path, poll_seconds=3600, slow=False)


def test_banner_changes_in_the_same_round_trip(slow_poll: Walk) -> None:
    """Error, success, disconnect, reconnect: the banner follows each response, not the poll."""
    walk = slow_poll
    walk.backend.faults.bad_data = True
    walk.scan()
    walk.wait_shown(BANNER, "Data not available")
    walk.backend.faults.bad_data = False
    walk.scan()
    walk.wait_hidden(BANNER)  # success clears the error banner at once
    walk.backend.faults.backend_down = True
    for _ in range(THRESHOLD):
        walk.scan()
        until(lambda: walk.duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
    walk.wait_shown(BANNER, "Session disconnected")
    walk.scan()  # refused: the banner stays, and the console logs no failed request
    walk.wait_shown(BANNER, "Session disconnected")
    assert walk.contradictions() == []
    walk.backend.faults.backend_down = False
    walk.duo.driver.set_window_size(*PHONE)  # the confirmation lasts seconds: seen at phone width
    try:
        walk.duo.find_element("#sessionmw-reconnect").click()
        walk.wait_shown(BANNER, "Reconnected")
        assert walk.shown(ALERT) == ""
        assert walk.contradictions() == []
        assert walk.duo.find_element("#sessionmw-status").size["height"] < PHONE[1] / 2
        walk.shoot("reconnected-phone")
    finally:
        walk.duo.driver.set_window_size(*DESKTOP)
    walk.wait_hidden(BANNER)
    assert walk.severe() == []


def test_banner_icon_is_drawn_once_without_emoji(slow_poll: Walk) -> None:
    """The banner's icon is an inline SVG in one place; no emoji in its text, refused or polled."""
    walk = slow_poll
    walk.backend.faults.backend_down = True
    for _ in range(THRESHOLD + 1):
        walk.scan()
        until(lambda: walk.duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
    walk.wait_shown(BANNER, "Session disconnected")
    text = walk.shown(BANNER)
    assert text.startswith("Session disconnected") and not any(ord(ch) > 0x2000 and ch != "—" for ch in text)
    icons = walk.duo.find_elements(f"{BANNER} img")
    assert len(icons) == 1 and str(icons[0].get_attribute("src")).startswith("data:image/svg+xml")


# -- the market data service dies: a paused dependency, not the session's fault (issue 12) -------

PAUSED_IN = re.compile(r"paused; we will try again in (\d+) seconds?")


def seconds_left(walk: Walk) -> int | None:
    """The countdown the banner shows now (None: no countdown on screen)."""
    found = PAUSED_IN.search(walk.shown(BANNER))
    return None if found is None else int(found.group(1))


def pause_the_market(walk: Walk) -> None:
    """Turn "Backend dies" on and scan until the breaker opens: first the failure, then "paused"."""
    walk.knob("dies")
    until(lambda: walk.backend.faults.backend_dies, timeout=WAIT, msg="the knob left the backend alive")
    walk.scan()
    walk.wait_shown(BANNER, "Background service failed")  # the first failures: said, not counted
    assert "Session" not in walk.shown(BANNER) and walk.errors() == 0
    until(lambda: walk.duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
    walk.scan()  # retried to the failure threshold: the breaker opens
    walk.wait_shown(BANNER, "Service paused")


def test_walk_backend_dies_pauses_and_recovers(walk: Walk) -> None:
    """Backend dies: first failures, then paused with a live countdown and no session harmed;
    the knob off and the pause over, the banner clears by itself and a scan works."""
    duo = walk.duo
    pause_the_market(walk)
    first = seconds_left(walk)
    assert first is not None and 25 <= first <= 30, walk.shown(BANNER)
    until(
        lambda: (seconds_left(walk) or first) < first,
        timeout=WAIT,
        msg="the countdown does not tick in the browser",
    )
    banner = walk.shown(BANNER)
    assert "nothing to reconnect" in banner and "Try the action again" not in banner
    steps = [step.text for step in duo.find_elements("#sessionmw-banner-steps li")]
    assert steps and steps[0].startswith("Wait for the countdown"), steps  # step 1 is an action
    assert not duo.find_element("#sessionmw-reconnect").is_displayed()
    walk.check("demo-paused", phone=True)
    # More clicks while paused: refused at once, the backend is left alone, nobody disconnects.
    calls = walk.backend.calls
    for _ in range(THRESHOLD):
        walk.scan()
        until(lambda: duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
        walk.wait_shown(BANNER, "Service paused")
    assert walk.backend.calls == calls
    record = walk.manager.get_session(walk.session_id())
    assert record is not None and record.state is SessionState.ACTIVE and record.error_count == 0
    assert walk.contradictions() == []

    # The service is back and the pause over: the page's poll probes it, the banner clears.
    walk.knob("dies")
    until(lambda: not walk.backend.faults.backend_dies, timeout=WAIT, msg="unticking left it dead")
    walk.clock.advance(31)
    walk.wait_hidden(BANNER)
    walk.scan()
    duo.wait_for_element("#scan-results", timeout=WAIT)
    assert walk.errors() == 0
    assert walk.severe() == []


def test_countdown_runs_out_and_the_page_asks_at_once(slow_poll: Walk) -> None:
    """At zero the banner says "trying again now" and asks the server at once, not at the next
    poll (an hour away here): once the service is back and the server's pause over, it clears."""
    walk = slow_poll
    walk.duo.driver.execute_script(_WATCH_MESSAGE)
    pause_the_market(walk)
    walk.clock.advance(28)  # the server's pause nearly over; a refused click brings its 2 seconds
    walk.scan()
    until(lambda: (seconds_left(walk) or 30) <= 2, timeout=WAIT, msg="the refusal did not carry 2 seconds")
    until(
        lambda: (
            "The market data service is paused; trying again now" in walk.duo.driver.execute_script(_SEEN)
        ),
        timeout=WAIT,
        msg="the countdown never reached zero",
    )
    walk.backend.faults.backend_dies = False
    walk.clock.advance(2)  # the server's pause is over too: the page's next question probes
    walk.wait_hidden(BANNER)
    assert walk.errors() == 0 and walk.severe() == []


# Every text the banner's message shows (the zero of a countdown lasts one round trip).
_WATCH_MESSAGE = """
window.__seenMessages = [];
const target = document.getElementById("sessionmw-banner-message");
new MutationObserver(function () { window.__seenMessages.push(target.textContent); })
    .observe(target, {childList: true, characterData: true, subtree: true});
"""
_SEEN = "return window.__seenMessages || [];"


def test_walk_not_found_after_a_real_restart(dash_duo: Any, tmp_path: Path) -> None:
    """The demo really restarted under an open page (``sessionmw demo`` stopped by its pid and
    started again on the same port): a click says "Session not found" and runs nothing; a refresh
    starts a session on which the click runs."""
    port, state, log = free_port(), tmp_path / "state", tmp_path / "demo.log"
    duo = dash_duo
    with demo_server(port, state, log):
        duo.driver.set_window_size(*DESKTOP)
        duo.driver.get(f"http://127.0.0.1:{port}/")
        duo.wait_for_element("#scan-run", timeout=WAIT).click()
        until(lambda: "ACME" in duo.find_element("#scan-output").text, timeout=WAIT)
    server_gone(duo)
    with demo_server(port, state, log):
        # The page finds the server again by itself, and says what it finds: the session is gone.
        until(lambda: "Session not found" in walk_banner(duo), timeout=BACK, msg="the banner stayed")
        duo.get_logs()
        duo.reset_log_timestamp()  # the page's fetches while the server was down are not ours
        field = duo.find_element("#scan-symbols")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys("NEWCO")
        duo.find_element("#scan-run").click()
        until(
            lambda: "Session not found" in duo.find_element(BANNER).text,
            timeout=WAIT,
            msg="the banner never said 'Session not found'",
        )
        assert "Refresh" in duo.find_element(BANNER).text
        until(lambda: duo.find_element("#scan-run").is_enabled(), timeout=WAIT)
        assert "NEWCO" not in duo.find_element("#scan-output").text  # the click did not run
        assert duo.get_logs() == []  # the refusal logs no SEVERE console entry
        duo.find_element("#sessionmw-status").screenshot(str(tmp_path / "banner-not-found-restart.png"))
        duo.driver.refresh()
        duo.wait_for_element("#scan-run", timeout=WAIT).click()
        until(lambda: "NEWCO" in duo.find_element("#scan-output").text, timeout=WAIT)
        assert "Session not found" not in duo.find_element("#react-entry-point").text


#: Seconds within which the page shows that the server went away, or came back (issue 27).
BACK = 5


def walk_banner(duo: Any) -> str:
    """The banner's text ('' when hidden)."""
    found = duo.find_elements(BANNER)
    return str(found[0].text) if found and found[0].is_displayed() else ""


def server_gone(duo: Any, shots: Path | None = None) -> None:
    """The server is stopped: a click says so within :data:`BACK` seconds, with steps for a server
    on this computer (no network advice), and the button it disabled is usable again at once."""
    duo.find_element("#scan-run").click()
    until(lambda: "Server not running" in walk_banner(duo), timeout=BACK, msg="the banner never said it")
    until(lambda: duo.find_element("#scan-run").is_enabled(), timeout=BACK, msg="Scan stayed disabled")
    banner = walk_banner(duo)
    assert "network" not in banner and "Start the server again" in banner, banner
    assert "Refresh" not in banner and "Reconnect" not in banner
    assert looks_unavailable(duo), "Scan looks usable with the server gone"
    console = [entry["message"] for entry in duo.get_logs()]
    assert not [line for line in console if "Callback failed" in line], console
    if shots is not None:
        duo.find_element("#sessionmw-status").screenshot(str(shots / "banner-server-gone.png"))
        duo.driver.set_window_size(*PHONE)
        try:
            assert "Start the server again" in walk_banner(duo)
            duo.find_element("#react-entry-point").screenshot(str(shots / "banner-server-gone-phone.png"))
        finally:
            duo.driver.set_window_size(*DESKTOP)


def test_walk_the_server_goes_away_and_comes_back(dash_duo: Any, tmp_path: Path) -> None:
    """The demo stops under an open page and starts again on a store that kept its sessions: a
    click while it is down says so at once and leaves Scan usable; once it is back the page finds
    it by itself (the banner goes within 5 s), and the next click runs."""
    port, state, log = free_port(), tmp_path / "state", tmp_path / "demo.log"
    store = ("--store", f"sqlite:///{tmp_path / 'sessions.db'}")
    duo = dash_duo
    with demo_server(port, state, log, *store):
        duo.driver.set_window_size(*DESKTOP)
        duo.driver.get(f"http://127.0.0.1:{port}/")
        duo.wait_for_element("#scan-run", timeout=WAIT).click()
        until(lambda: "ACME" in duo.find_element("#scan-output").text, timeout=WAIT)
        duo.get_logs()
    # No click: the page's own poll notices within seconds.
    until(
        lambda: "Server not running" in walk_banner(duo),
        timeout=DEMO_POLL_SECONDS + 2,
        msg="the page did not notice the server was gone",
    )
    server_gone(duo, tmp_path)
    server_gone(duo)  # and again: every click, not only the first
    with demo_server(port, state, log, *store):
        until(lambda: walk_banner(duo) == "", timeout=BACK, msg="the banner stayed with the server back")
        assert not looks_unavailable(duo)
        field = duo.find_element("#scan-symbols")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys("NEWCO")
        duo.find_element("#scan-run").click()
        until(lambda: "NEWCO" in duo.find_element("#scan-output").text, timeout=WAIT)
        assert walk_banner(duo) == ""
