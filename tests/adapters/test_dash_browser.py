"""The demo app in a real (headless chromium) browser: alerts, the banner's states, reconnect, refresh;
and host apps (layout functions, debug mode, several apps, a Bootstrap theme).

Every test runs on Dash's Flask backend; those marked :data:`EVERY_BACKEND` on FastAPI
(uvicorn) and Quart (Hypercorn) too (issue 25), each served in a thread of this process by
dash.testing, so that the manager and its fake clock stay in the test's hands. Screenshots of
each banner state are saved in the test's tmp dir, one per backend (``docs/img/`` is refreshed
from the Flask walk in ``operations/test_demo_walk_browser.py``).

Why a subset on the other two: the banner's browser code, the demo's page and Dash's renderer
are the same on every backend; what differs is the server side, so every test that goes through
a part of it that each backend does its own way runs on all three: a callback's failure recorded
and told, the refusal of a disconnected or expired session turned into the banner's update,
the health and reconnect endpoints, the demo's own routes (the fault knobs), a clean console, the
dev tools in debug mode and several apps on one server. Measured on one busy machine, the whole
matrix took this file from about 205 s (Flask only) to 575 s; this subset takes about 290 s.
``operations/test_demo_walk_browser.py`` walks the whole demo on each backend.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.keys import Keys
from support.browser import ALERT, BANNER, BROWSER_MARKS, SERVERS, THRESHOLD, WAIT, serve, until

from sessionmw import DataLoadError, SessionManager, SessionState
from sessionmw.demo import load_demo
from sessionmw.testing import FakeClock
from sessionmw.translation import translate

pytestmark = BROWSER_MARKS


@dataclasses.dataclass
class Demo:
    """The demo app under test, with the objects a test steers it by."""

    duo: Any
    manager: SessionManager
    clock: FakeClock
    backend: Any
    shots: Path
    server: str = "flask"

    def session_id(self) -> str:
        """The browser's session id (from its HttpOnly cookie)."""
        cookie = self.duo.driver.get_cookie("sessionmw")
        assert cookie is not None, "the browser has no session cookie"
        return str(cookie["value"])

    def banner_text(self) -> str:
        """What the banner shows ('' while hidden)."""
        element = self.duo.find_element(BANNER)
        return str(element.text) if element.is_displayed() else ""

    def wait_banner(self, text: str) -> None:
        """Wait (bounded) until the banner shows ``text``."""
        until(lambda: text in self.banner_text(), timeout=WAIT, msg=f"banner never showed {text!r}")

    def shoot(self, name: str, selector: str = BANNER) -> None:
        """Save a screenshot of ``selector`` as ``<name>.png``."""
        element = self.duo.find_element(selector)
        path = self.shots / f"{name}.png"
        element.screenshot(str(path))  # docs/img/ comes from operations/test_demo_walk_browser.py


#: A test whose server side each backend does its own way: run on every backend (see above).
EVERY_BACKEND = pytest.mark.parametrize("server", SERVERS)


@pytest.fixture(name="server")
def _server() -> str:
    """Dash's backend a test's app is served on (``Dash(backend=...)``): Flask, unless the test is
    marked :data:`EVERY_BACKEND`."""
    return "flask"


@pytest.fixture(name="demo")
def _demo(dash_duo: Any, tmp_path: Path, request: pytest.FixtureRequest, server: str) -> Iterator[Demo]:
    """The demo app on a fake clock, on Dash's ``server`` backend, served to a fresh browser.

    The banner polls twice a second, or every ``request.param`` seconds (indirect parametrisation).
    """
    module = load_demo()
    clock = FakeClock()
    manager = SessionManager(
        store="memory://",
        clock=clock,
        health_check_interval_seconds=getattr(request, "param", 0.5),
        max_error_threshold=THRESHOLD,
    )
    backend = module.MarketBackend(sleep=lambda seconds: None)
    no_wait: Callable[[float], None] = lambda seconds: None  # noqa: E731
    app = module.create_app(manager=manager, backend=backend, retry_sleep=no_wait, server=server)
    serve(dash_duo, app)
    dash_duo.wait_for_element("#scan-run", timeout=WAIT)
    demo = Demo(dash_duo, manager, clock, backend, tmp_path, server)
    until(lambda: dash_duo.driver.get_cookie("sessionmw") is not None, timeout=WAIT)
    if manager.get_session(demo.session_id()) is None:  # nothing on the page stores it before an action
        manager.create_session(demo.session_id())
    yield demo
    manager.close()


@EVERY_BACKEND
def test_failing_callback_shows_friendly_alert(demo: Demo) -> None:
    """A callback whose backend dies shows the friendly alert, records the error, and leaks nothing."""
    demo.backend.faults.backend_down = True
    demo.duo.find_element("#scan-run").click()
    demo.duo.wait_for_contains_text(  # one voice: the failure is folded into the banner (issue 11)
        BANNER, "The background process serving your session is not running", timeout=WAIT
    )
    assert "Try the action again" in demo.banner_text()
    assert not demo.duo.find_element(ALERT).is_displayed()
    page = demo.duo.driver.page_source
    assert "RuntimeError" not in page and "Traceback" not in page
    record = demo.manager.get_session(demo.session_id())
    assert record is not None and record.error_count == 1
    demo.shoot("alert-backend-down")


def test_scan_succeeds_through_transient_failures(demo: Demo) -> None:
    """Two transient backend failures are retried away: the table appears, no alert."""
    demo.backend.faults.transient_failures = 2
    demo.duo.find_element("#scan-run").click()
    demo.duo.wait_for_element("#scan-results", timeout=WAIT)
    assert not demo.duo.find_element(ALERT).is_displayed()
    assert "ACME" in demo.duo.find_element("#scan-results").text
    demo.shoot("demo-scanner", "#react-entry-point")


def test_banner_idle_and_error_states(demo: Demo) -> None:
    """The banner is hidden while healthy, then shows the idle and the error states."""
    assert demo.banner_text() == ""
    demo.clock.advance(301)
    demo.wait_banner("Session idle")
    demo.shoot("banner-idle")
    sid = demo.session_id()
    demo.manager.update_session_activity(sid)
    demo.manager.record_error(sid, "backend failed")
    demo.wait_banner("Something went wrong")
    assert "Try the action again" in demo.banner_text()
    demo.shoot("banner-error")


@pytest.mark.parametrize("demo", [3600], indirect=True)
def test_activity_clears_the_idle_banner_without_a_poll(demo: Demo) -> None:
    """Idle, shown by a poll with its icon drawn once; then a click clears the banner with its own
    response (the next poll is an hour away)."""
    demo.clock.advance(301)
    # One poll, as the interval fires it.
    demo.duo.driver.execute_script("window.dash_clientside.set_props('sessionmw-poll', {n_intervals: 1})")
    demo.wait_banner("Session idle")
    text = demo.banner_text()
    assert text.startswith("Session idle") and not any(ord(ch) > 0x2000 and ch != "—" for ch in text)
    icons = demo.duo.find_elements(f"{BANNER} img")
    assert len(icons) == 1 and str(icons[0].get_attribute("src")).startswith("data:image/svg+xml")
    demo.duo.find_element("#scan-run").click()
    demo.duo.wait_for_element("#scan-results", timeout=WAIT)
    until(lambda: demo.banner_text() == "", timeout=WAIT, msg="the idle banner stayed after the click")


def test_slow_scan_disables_the_button_and_hides_the_old_results(demo: Demo) -> None:
    """While a slow scan runs the button is disabled and the previous table is not shown as
    current; the new one comes when the backend answers."""
    duo = demo.duo
    duo.find_element("#scan-run").click()
    duo.wait_for_element("#scan-results", timeout=WAIT)
    release = threading.Event()
    demo.backend.sleep = lambda seconds: release.wait(WAIT)
    demo.backend.faults.latency_seconds = 1.0
    try:
        duo.find_element("#scan-run").click()
        until(lambda: not duo.find_element("#scan-run").is_enabled(), timeout=WAIT, msg="Scan stayed enabled")
        until(
            lambda: not any(table.is_displayed() for table in duo.find_elements("#scan-results")),
            timeout=WAIT,
            msg="the old table stayed on screen as if current",
        )
    finally:
        release.set()
    until(lambda: duo.find_element("#scan-run").is_enabled(), timeout=WAIT, msg="Scan stayed disabled")
    until(lambda: duo.find_element("#scan-results").is_displayed(), timeout=WAIT)


def test_banner_appears_when_session_expires(demo: Demo) -> None:
    """Past the inactivity timeout the banner says the session expired and how to recover."""
    demo.clock.advance(31 * 60)
    demo.wait_banner("Session expired")
    assert "Refresh the page" in demo.banner_text()
    demo.shoot("banner-expired")


def test_banner_not_found(demo: Demo) -> None:
    """A session the server lost (e.g. restarted, long ago) shows the not-found banner."""
    demo.manager.delete_session(demo.session_id())
    demo.clock.advance(31 * 60)  # too old to be re-adopted as a freshly issued id
    demo.wait_banner("Session not found")
    demo.shoot("banner-not-found")


@EVERY_BACKEND
def test_repeated_errors_disconnect_and_reconnect_clears_banner(demo: Demo) -> None:
    """Repeated failures disconnect the session; Reconnect clears the banner without a reload."""
    demo.backend.faults.backend_down = True
    for clicks in range(1, THRESHOLD + 1):
        demo.duo.find_element("#scan-run").click()
        until(lambda n=clicks: _errors(demo) >= n, timeout=WAIT, msg="the error was not recorded")
    demo.wait_banner("Session disconnected")
    demo.shoot("banner-disconnected", "#sessionmw-status")
    sid = demo.session_id()
    record = demo.manager.get_session(sid)
    assert record is not None and record.state is SessionState.DISCONNECTED
    demo.duo.driver.execute_script("window.__notReloaded = true;")
    demo.backend.faults.backend_down = False
    demo.duo.find_element("#sessionmw-reconnect").click()
    until(lambda: demo.banner_text() == "", timeout=WAIT, msg="the banner stayed after Reconnect")
    assert demo.duo.driver.execute_script("return window.__notReloaded === true;")
    record = demo.manager.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE
    demo.duo.find_element("#scan-run").click()
    demo.duo.wait_for_element("#scan-results", timeout=WAIT)


@EVERY_BACKEND
@pytest.mark.parametrize("demo", [3600], indirect=True)  # no poll after the first: the click must tell
def test_callback_refused_while_disconnected_updates_banner(demo: Demo) -> None:
    """A click on a disconnected session does not run the callback; the banner says why at once."""
    sid = demo.session_id()
    for _ in range(THRESHOLD):
        demo.manager.record_error(sid, "backend failed")
    calls_before = demo.backend.calls
    demo.duo.find_element("#scan-run").click()
    demo.wait_banner("Session disconnected")
    assert demo.backend.calls == calls_before


@EVERY_BACKEND
@pytest.mark.parametrize("demo", [3600], indirect=True)
def test_callback_on_an_expired_session_shows_expired_banner(demo: Demo) -> None:
    """A click after the session expired does not run; the banner says so and stays until a refresh."""
    demo.clock.advance(31 * 60)
    calls_before = demo.backend.calls
    demo.duo.find_element("#scan-run").click()
    demo.wait_banner("Session expired")
    assert demo.backend.calls == calls_before
    demo.duo.driver.refresh()
    demo.duo.wait_for_element("#scan-run", timeout=WAIT)
    until(lambda: demo.banner_text() == "", timeout=WAIT, msg="the banner survived the refresh")
    demo.duo.find_element("#scan-run").click()
    demo.duo.wait_for_element("#scan-results", timeout=WAIT)


def test_disconnected_session_can_refresh_and_reconnect(demo: Demo) -> None:
    """Refreshing a disconnected session's page loads the app and its banner; Reconnect recovers."""
    sid = demo.session_id()
    for _ in range(THRESHOLD):
        demo.manager.record_error(sid, "backend failed")
    demo.duo.driver.refresh()
    demo.duo.wait_for_element("#scan-run", timeout=WAIT)
    demo.wait_banner("Session disconnected")
    demo.duo.find_element("#sessionmw-reconnect").click()
    until(lambda: demo.banner_text() == "", timeout=WAIT, msg="the banner stayed after Reconnect")
    record = demo.manager.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE


def test_backtests_show_progress_and_results(demo: Demo) -> None:
    """The Backtest Manager runs a batch, with progress, until every symbol has a result."""
    demo.duo.find_element("#tab-backtests").click()
    demo.duo.wait_for_element("#bt-run", timeout=WAIT).click()
    demo.duo.wait_for_text_to_equal("#bt-progress-label", "5 of 5 done", timeout=WAIT)
    rows = demo.duo.find_elements("#bt-results-table tbody tr")
    assert len(rows) == 5
    demo.shoot("demo-backtests", "#react-entry-point")


@EVERY_BACKEND
def test_fault_knob_breaks_the_backend(demo: Demo) -> None:
    """Ticking "Backend down" on the Fault knobs page makes the next scan show the alert."""
    demo.duo.find_element("#tab-faults").click()
    demo.duo.wait_for_element("#fault-flags input[value='down']", timeout=WAIT).click()
    demo.duo.wait_for_contains_text("#fault-summary", "backend down", timeout=WAIT)
    assert demo.backend.faults.backend_down
    demo.duo.find_element("#tab-scanner").click()
    demo.duo.wait_for_element("#scan-run", timeout=WAIT).click()
    demo.duo.wait_for_contains_text(BANNER, "Session not running", timeout=WAIT)


# The race behind a flake of test_fault_knob_breaks_the_backend, forced: the scan's response has
# arrived, a health poll starts before Dash has read and applied it, and the poll's answer (the
# session's error state, asked after the failure was recorded) comes after Dash applied the scan's
# report. Dash holds the banner's rendering back while the poll runs (the poll writes the banner's
# store), so the poll's answer must not be taken for newer than the report it was asked before.
_RACE = """
const ns = window.dash_clientside._dashprivate_clientside_funcs;
const name = Object.keys(ns).find(function (key) { return String(ns[key]).indexOf("health?page=1") >= 0; });
const poll = ns[name];
let asked;
const pollAsked = new Promise(function (resolve) { asked = resolve; });
ns[name] = function () { const answer = poll.apply(this, arguments); asked(); return answer; };
let release;
const held = new Promise(function (resolve) { release = resolve; });
window.__releaseHealth = release;
const inner = window.fetch;
window.fetch = async function (input, init) {
    const url = typeof input === "string" ? input : (input && input.url) || "";
    if (url.indexOf("_dash-update-component") >= 0 && String(init && init.body).indexOf("scan-output") >= 0) {
        const response = await inner(input, init);  // arrived: the poll starts before Dash reads it
        window.dash_clientside.set_props("sessionmw-poll", {n_intervals: Date.now()});
        await pollAsked;
        return response;
    }
    if (url.indexOf("/_sessionmw/health") >= 0) {
        const response = await inner(input, init);
        await held;  // answered once the test saw Dash apply the scan's response
        window.__pollAnswered = true;
        return response;
    }
    return inner(input, init);
};
"""


@pytest.mark.parametrize("demo", [3600], indirect=True)  # no poll but the one the test starts
def test_a_poll_started_before_a_failure_is_applied_does_not_replace_it(demo: Demo) -> None:
    """A failed scan whose response Dash applies while a health poll runs: the banner says what
    failed ("Session not running"), not the poll's answer ("Something went wrong")."""
    duo = demo.duo
    until(lambda: duo.driver.execute_script("return window.__sessionmwFetch === true;"), timeout=WAIT)
    duo.driver.execute_script(_RACE)
    demo.backend.faults.backend_down = True
    duo.find_element("#scan-run").click()
    duo.wait_for_contains_text("#scan-output", "this scan failed", timeout=WAIT)  # applied
    assert _errors(demo) == 1
    duo.driver.execute_script("window.__releaseHealth();")
    until(lambda: duo.driver.execute_script("return window.__pollAnswered === true;"), timeout=WAIT)
    until(lambda: demo.banner_text() != "", timeout=WAIT, msg="the banner stayed hidden")
    assert "Session not running" in demo.banner_text(), demo.banner_text()
    demo.shoot("banner-after-race")


# The race behind a flake of the demo walk's bad-data step (test_walk_healthy_knobs_slow_and_bad_data),
# forced: a health poll runs when the failed scan's response arrives, so Dash applies the scan's
# report to the banner's store but holds the banner's rendering back; a second poll starts before
# the banner is drawn. The second poll is asked after the failure (its answer is not stale): it must
# compare the server's answer with the report in the store (the failure's, "Data not available"),
# not with the banner still on screen (none), or it replaces the failure's words by the session's
# own ("Something went wrong").
_SECOND_POLL = """
const ns = window.dash_clientside._dashprivate_clientside_funcs;
const name = Object.keys(ns).find(function (key) { return String(ns[key]).indexOf("health?page=1") >= 0; });
const poll = ns[name];
window.__pollsAsked = 0;
ns[name] = function () { window.__pollsAsked += 1; return poll.apply(this, arguments); };
let release;
const held = new Promise(function (resolve) { release = resolve; });
window.__releaseHealth = release;
window.__healthAnswered = 0;
const inner = window.fetch;
window.fetch = async function (input, init) {
    const url = typeof input === "string" ? input : (input && input.url) || "";
    if (url.indexOf("/_sessionmw/health") >= 0) {
        const response = await inner(input, init);
        await held;  // answered once the test has started the second poll
        window.__healthAnswered += 1;
        return response;
    }
    return inner(input, init);
};
"""
_POLL_NOW = "window.dash_clientside.set_props('sessionmw-poll', {n_intervals: Date.now()});"


@pytest.mark.parametrize("demo", [3600], indirect=True)  # no poll but the ones the test starts
def test_a_poll_started_before_a_failure_is_drawn_keeps_its_words(demo: Demo) -> None:
    """A failed scan whose report Dash holds back while a health poll runs, and a second poll that
    starts before the banner is drawn: the banner says what failed ("Data not available")."""
    duo = demo.duo
    until(lambda: duo.driver.execute_script("return window.__sessionmwFetch === true;"), timeout=WAIT)
    duo.driver.execute_script(_SECOND_POLL)
    duo.driver.execute_script(_POLL_NOW)
    until(lambda: duo.driver.execute_script("return window.__pollsAsked;") == 1, timeout=WAIT)
    demo.backend.faults.bad_data = True
    duo.find_element("#scan-run").click()
    duo.wait_for_contains_text("#scan-output", "this scan failed", timeout=WAIT)  # applied
    assert _errors(demo) == 1
    assert demo.banner_text() == ""  # held back while the first poll runs
    duo.driver.execute_script(_POLL_NOW)
    until(lambda: duo.driver.execute_script("return window.__pollsAsked;") == 2, timeout=WAIT)
    duo.driver.execute_script("window.__releaseHealth();")
    until(lambda: duo.driver.execute_script("return window.__healthAnswered;") == 2, timeout=WAIT)
    until(lambda: demo.banner_text() != "", timeout=WAIT, msg="the banner stayed hidden")
    assert "Data not available" in demo.banner_text(), demo.banner_text()


def test_marked_input_survives_refresh(demo: Demo) -> None:
    """A preserved input keeps what the user typed across a page refresh."""
    field = demo.duo.find_element("#scan-symbols")
    field.send_keys(Keys.CONTROL, "a")  # clear() bypasses React's change events
    field.send_keys("WAYNE, UMBRL")
    demo.duo.wait_for_element("#scan-symbols", timeout=WAIT)
    demo.duo.driver.refresh()
    demo.duo.wait_for_element("#scan-run", timeout=WAIT)
    until(
        lambda: demo.duo.find_element("#scan-symbols").get_attribute("value") == "WAYNE, UMBRL",
        timeout=WAIT,
        msg="the typed symbols were lost on refresh",
    )


@EVERY_BACKEND
def test_health_polls_do_not_extend_the_session(demo: Demo) -> None:
    """The banner's polls reach the server but never count as activity."""
    sid = demo.session_id()
    before = demo.manager.get_session(sid)
    assert before is not None
    polls: list[str] = []
    check_health, acheck_health = demo.manager.check_health, demo.manager.acheck_health

    def counting(session_id: str) -> Any:
        polls.append(session_id)
        return check_health(session_id)

    async def acounting(session_id: str) -> Any:  # the health endpoint on Quart and FastAPI
        polls.append(session_id)
        return await acheck_health(session_id)

    demo.manager.check_health = counting  # type: ignore[method-assign]
    demo.manager.acheck_health = acounting  # type: ignore[method-assign]
    demo.clock.advance(120)
    until(lambda: len(polls) >= 3, timeout=WAIT, msg="the banner did not poll")
    after = demo.manager.get_session(sid)
    assert after is not None and after.last_activity == before.last_activity
    assert set(polls) == {sid}


def test_bootstrap_themed_app_gets_bootstrap_banner_and_button(
    dash_duo: Any, tmp_path: Path, server: str
) -> None:
    """An app that loads a Bootstrap stylesheet, with dash-bootstrap-components installed, gets the
    banner as a Bootstrap alert and dash-bootstrap-components' Reconnect button, which works."""
    import dash
    from dash import html

    from sessionmw.integrations.dash import SessionMWDash
    from sessionmw.integrations.dash_banner import status_banner

    clock = FakeClock()
    manager = SessionManager(
        store="memory://", clock=clock, health_check_interval_seconds=0.5, max_error_threshold=THRESHOLD
    )
    # A loopback URL that names Bootstrap (the stylesheet itself is not needed: classes are checked).
    app = dash.Dash(__name__, external_stylesheets=["/static-test/bootstrap.min.css"], backend=server)
    app.layout = html.Div([status_banner(), html.P("page", id="page")])
    SessionMWDash(app, manager=manager)
    serve(dash_duo, app)
    dash_duo.wait_for_element("#page", timeout=WAIT)
    demo = Demo(dash_duo, manager, clock, None, tmp_path, server)
    until(lambda: manager.get_session(demo.session_id()) is not None, timeout=WAIT)
    sid = demo.session_id()
    for _ in range(THRESHOLD):
        manager.record_error(sid, "backend down")
    demo.wait_banner("Session disconnected")
    banner_classes = str(dash_duo.find_element(BANNER).get_attribute("class")).split()
    assert {"alert", "alert-danger", "sessionmw-disconnected"} <= set(banner_classes)
    button = dash_duo.find_element("#sessionmw-reconnect")
    assert {"btn", "btn-danger", "btn-sm"} <= set(str(button.get_attribute("class")).split())
    button.click()
    until(lambda: demo.banner_text() == "", timeout=WAIT, msg="the banner stayed after Reconnect")
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE
    manager.close()


def _errors(demo: Demo) -> int:
    record = demo.manager.get_session(demo.session_id())
    return 0 if record is None else record.error_count


# -- in a host app: layouts Dash validates, debug mode, several apps ----------------------------


def _host_app(manager: SessionManager, server: str, **options: Any) -> Any:
    """A page with a button whose callback echoes the clicks, or fails on the third, on Dash's
    ``server`` backend."""
    import dash
    from dash import Input, Output, html

    from sessionmw.integrations.dash import SessionMWDash

    app = dash.Dash(__name__, backend=server, **options.pop("dash", {}))
    layout = options.pop("layout", None)
    app.layout = (
        layout
        if layout is not None
        else lambda: html.Div([html.Button("Go", id="go"), html.Div(id="out"), html.P("page", id="page")])
    )

    def echo(clicks: int | None) -> str:
        if clicks == 3:
            raise DataLoadError("prices.csv is corrupt")
        return f"clicked {clicks}"

    register: Any = app.callback(
        Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True
    )
    register(echo)
    SessionMWDash(app, manager=manager, **options)
    return app


def _click_until(duo: Any, text: str) -> None:
    duo.find_element("#go").click()
    duo.wait_for_text_to_equal("#out", text, timeout=WAIT)


def _devtools_errors(duo: Any) -> int:
    """The dev tools' error count (0 while it shows none)."""
    counts = duo.find_elements(duo.devtools_error_count_locator)
    return int(counts[0].text) if counts else 0


#: ``Dash.run`` options of the debug-mode tests (``serve`` passes Flask's own to Flask only).
DEBUG = {"debug": True, "use_reloader": False, "use_debugger": True, "dev_tools_hot_reload": False}


def test_layout_function_in_debug_mode_reports_no_missing_ids(dash_duo: Any, server: str) -> None:
    """A layout function (Dash validates against its validation layout): the dev tools report no
    "ID not found in layout" for the banner's callbacks."""
    manager = SessionManager(store="memory://", clock=FakeClock())
    app = _host_app(manager, server)
    serve(dash_duo, app, **DEBUG)
    dash_duo.wait_for_element("#page", timeout=WAIT)
    _click_until(dash_duo, "clicked 1")
    assert dash_duo.find_elements("#sessionmw-banner")
    assert _devtools_errors(dash_duo) == 0
    manager.close()


@EVERY_BACKEND
def test_layout_function_in_production_logs_no_console_errors(dash_duo: Any, server: str) -> None:
    """The same without the dev tools: nothing in the browser console."""
    manager = SessionManager(store="memory://", clock=FakeClock())
    serve(dash_duo, _host_app(manager, server))
    dash_duo.wait_for_element("#page", timeout=WAIT)
    _click_until(dash_duo, "clicked 1")
    assert dash_duo.get_logs() == []
    manager.close()


def _fail_and_open_devtools(dash_duo: Any) -> None:
    """Two clicks that work, a third that fails; the dev tools count one error and open their list."""
    dash_duo.wait_for_element("#page", timeout=WAIT)
    for clicks in (1, 2):
        _click_until(dash_duo, f"clicked {clicks}")
    dash_duo.find_element("#go").click()
    dash_duo.wait_for_text_to_equal(dash_duo.devtools_error_count_locator, "1", timeout=WAIT)
    dash_duo.find_element(".test-devtools-error-toggle").click()


@EVERY_BACKEND
def test_guard_all_in_debug_mode_shows_the_error_in_devtools(dash_duo: Any, server: str) -> None:
    """debug=True and guard_all=True: a failing callback counts in the dev tools, with its traceback."""
    from dash import html

    manager = SessionManager(store="memory://", clock=FakeClock())
    page = html.Div([html.Button("Go", id="go"), html.Div(id="out"), html.P("page", id="page")])
    app = _host_app(manager, server, guard_all=True, layout=page)
    serve(dash_duo, app, **DEBUG)
    _fail_and_open_devtools(dash_duo)
    dash_duo.wait_for_element(".dash-fe-error__title", timeout=WAIT)
    until(
        lambda: "prices.csv is corrupt" in dash_duo.driver.page_source,
        timeout=WAIT,
        msg="the dev tools do not show the exception",
    )
    manager.close()


#: Why a test does not run on Quart (docs/dash.md, "By backend", says the same).
NO_SECOND_APP_ON_QUART = (
    "Dash 4.4 builds no second app on one Quart server: both register the websocket route's "
    "endpoint websocket_handler, and Quart refuses it in Dash(), before sessionmw"
)


def _bare_server(server: str) -> Any:
    """A server of Dash's ``server`` backend with no Dash app yet (Flask or FastAPI)."""
    if server == "fastapi":
        from fastapi import FastAPI

        return FastAPI()
    from flask import Flask

    return Flask(__name__)


@EVERY_BACKEND
def test_two_apps_on_one_server_each_poll_their_banner(dash_duo: Any, server: str) -> None:
    """Dash's url_base_pathname pattern: the second app's page gets a working banner too."""
    import dash
    from dash import html

    from sessionmw.integrations.dash import SessionMWDash

    if server == "quart":
        pytest.skip(NO_SECOND_APP_ON_QUART)
    clock = FakeClock()
    manager = SessionManager(store="memory://", clock=clock, health_check_interval_seconds=0.5)
    shared: Any = _bare_server(server)
    apps = []
    for name, base in (("one", "/"), ("two", "/two/")):
        app = dash.Dash(__name__, server=shared, url_base_pathname=base)
        app.layout = html.Div([html.P(name, id="page")])
        SessionMWDash(app, manager=manager, secret_key="k" * 32)
        apps.append(app)
    serve(dash_duo, apps[0])
    dash_duo.wait_for_element("#page", timeout=WAIT)
    dash_duo.driver.get(dash_duo.server_url + "/two/")
    dash_duo.wait_for_text_to_equal("#page", "two", timeout=WAIT)
    demo = Demo(dash_duo, manager, clock, None, Path("."), server)
    until(lambda: manager.get_session(demo.session_id()) is not None, timeout=WAIT)
    clock.advance(301)
    demo.wait_banner("Session idle")
    assert dash_duo.get_logs() == []
    manager.close()


def test_debug_mode_without_pruning_shows_the_real_traceback(dash_duo: Any, server: str) -> None:
    """dev_tools_prune_errors=False: the dev tools show the callback's traceback, not sessionmw's JSON."""
    from dash import html

    manager = SessionManager(store="memory://", clock=FakeClock())
    page = html.Div([html.Button("Go", id="go"), html.Div(id="out"), html.P("page", id="page")])
    app = _host_app(manager, server, layout=page)
    serve(dash_duo, app, **DEBUG, dev_tools_prune_errors=False)
    _fail_and_open_devtools(dash_duo)
    until(
        lambda: "prices.csv is corrupt" in dash_duo.driver.page_source,
        timeout=WAIT,
        msg="the dev tools do not show the exception",
    )
    assert translate(DataLoadError("x")).title not in dash_duo.driver.page_source
    manager.close()
