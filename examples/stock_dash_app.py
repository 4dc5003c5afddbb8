"""The stock-analysis demo: a Dash app whose backend fails on demand, with sessionmw attached.

Run it with ``sessionmw demo`` (or ``python examples/stock_dash_app.py``) and open the URL it
prints. The **Scanner** page scans symbols; the **Backtest Manager** runs batch backtests with a
progress bar; the **Fault knobs** page makes the simulated backend fail: transient errors (a
retry gets through), a session's backend process that is not running ("This session is not
running"), a market data service that dies for everyone, slow responses, bad data. Failures show
a friendly alert, repeated ones disconnect the session and the banner offers Reconnect; the
symbols you typed survive a page refresh.

Every backend call goes through one circuit breaker, ``market-data`` (:data:`BREAKER_NAME`): when
the service dies it opens after :data:`FAILURE_THRESHOLD` failures, the banner says the service
is paused with a countdown, no session is disconnected for it, and the page's health poll probes
the service once the pause is over, so the banner clears by itself when it is back.

The fault knobs are the operator's controls, not the user's work: they talk to
``/demo/faults`` (outside session tracking), so they work and show the backend's real state
whatever the session's state.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import jsonify, request
from flask.typing import ResponseReturnValue
from market_backend import DEFAULT_SYMBOLS, BacktestJob, Faults, MarketBackend, ScanRow, parse_symbols

from sessionmw import (
    BackendProcessError,
    Breaker,
    BreakerState,
    ConfigurationError,
    RetryStrategy,
    SessionManager,
    current_session_id,
    guarded,
)
from sessionmw.actions import ActionLedger
from sessionmw.analytics import Analytics
from sessionmw.demo import EPILOG, FAULT_CHOICES, add_arguments, demo_settings
from sessionmw.integrations.dash import SessionMWDash, preserve
from sessionmw.integrations.dash_apps import current_request, dash_state
from sessionmw.integrations.dash_banner import status_banner
from sessionmw.integrations.dash_callbacks import guarded_callback, handle_callback_error
from sessionmw.stores import mask_url

__all__ = [
    "BREAKER_NAME",
    "FAILURE_THRESHOLD",
    "FAULTS_PATH",
    "FAULT_CHOICES",
    "FLAGS",
    "apply_fault",
    "create_app",
    "demo_secret",
    "fault_state",
    "main",
    "port_in_use",
    "set_flags",
]

_log = logging.getLogger("stock_dash_app")
#: The fault checklist's values (the faults that stay on until turned off).
FLAGS = ("down", "dies", "slow", "bad-data")
#: The circuit breaker every backend call goes through (the market data service).
BREAKER_NAME = "market-data"
#: Failed calls in a row (retries included) that open the breaker: a scan tries 3 times, so the
#: first failed scan shows the failure and the second one opens the breaker.
FAILURE_THRESHOLD = 5
#: Where the fault knobs read and change the backend (not session-tracked: operator controls).
FAULTS_PATH = "/demo/faults"
#: The header's icon: inline SVG (a rising line), the same in every browser and font.
LOGO = (
    "data:image/svg+xml;utf8,"
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='%232563eb' "
    "stroke-width='2.5' stroke-linecap='round' stroke-linejoin='round'>"
    "<path d='M3 3v18h18'/><path d='M7 15l4-4 3 3 6-7'/></svg>"
)

_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_PAGE = {
    "fontFamily": _FONT,
    "maxWidth": "960px",
    "margin": "24px auto",
    "padding": "0 16px",
    "color": "#111827",
}
_INPUT = {"padding": "6px 8px", "marginRight": "8px", "border": "1px solid #9ca3af", "borderRadius": "4px"}
_BUTTON = {
    "padding": "7px 16px",
    "background": "#2563eb",
    "color": "white",
    "border": "none",
    "borderRadius": "4px",
    "cursor": "pointer",
    "fontWeight": "600",
    "marginRight": "8px",
}
_STALE = {"color": "#6b7280", "fontStyle": "italic"}
_CELL = {"padding": "4px 12px", "borderBottom": "1px solid #e5e7eb", "textAlign": "right"}
_SIGNAL_COLOURS = {"BUY": "#15803d", "SELL": "#b91c1c", "HOLD": "#6b7280"}


def apply_fault(faults: Faults, name: str) -> None:
    """Turn on the fault ``name`` (one of :data:`FAULT_CHOICES`).

    :raises ValueError: for an unknown name.
    """
    if name == "transient":
        faults.transient_failures += 2
    elif name == "down":
        faults.backend_down = True
    elif name == "dies":
        faults.backend_dies = True
    elif name == "slow":
        faults.latency_seconds = 2.0
    elif name == "bad-data":
        faults.bad_data = True
    else:
        raise ValueError(f"unknown fault {name!r}: choose from {', '.join(FAULT_CHOICES)}")


def set_flags(faults: Faults, flags: Sequence[str]) -> None:
    """Turn the checklist faults on or off to match ``flags`` (values of :data:`FLAGS`).

    :raises ValueError: naming a value that is not one of :data:`FLAGS`.
    """
    unknown = [flag for flag in flags if flag not in FLAGS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}: choose from {', '.join(FLAGS)}")
    faults.backend_down = "down" in flags
    faults.backend_dies = "dies" in flags
    faults.latency_seconds = 2.0 if "slow" in flags else 0.0
    faults.bad_data = "bad-data" in flags


def fault_state(faults: Faults) -> dict[str, Any]:
    """The backend's faults as the knobs show them: checklist values, calls left to fail, summary."""
    active = faults.describe()
    return {
        "flags": _flags(faults),
        "transient": faults.transient_failures,
        "summary": "Active faults: " + (", ".join(active) if active else "none"),
    }


def _stale(text: str) -> html.P:
    """A note in place of results that could not be refreshed (the old ones would look current)."""
    return html.P(text, className="demo-stale", style=_STALE)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> html.Table:
    head = html.Tr([html.Th(title, style={**_CELL, "borderBottom": "2px solid #111827"}) for title in header])
    body = [html.Tr([html.Td(cell, style=_CELL) for cell in row]) for row in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], id=table_id, style={"borderCollapse": "collapse"})


def _scan_table(rows: list[ScanRow]) -> html.Table:
    cells = [
        [
            row.symbol,
            f"{row.last:,.2f}",
            f"{row.change_pct:+.2f}%",
            f"{row.momentum_pct:+.2f}%",
            f"{row.rsi:.1f}",
            html.Strong(row.signal, style={"color": _SIGNAL_COLOURS[row.signal]}),
        ]
        for row in rows
    ]
    return _table(["Symbol", "Last", "Day", "20-day momentum", "RSI", "Signal"], cells, "scan-results")


def _results_table(job: BacktestJob) -> html.Table:
    cells = [
        [r.symbol, f"{r.total_return_pct:+.2f}%", f"{r.max_drawdown_pct:.2f}%", r.trades] for r in job.results
    ]
    return _table(["Symbol", "Return", "Max drawdown", "Trades"], cells, "bt-results-table")


def _field(label: str, component: Any) -> html.Label:
    return html.Label(
        [html.Span(label, style={"marginRight": "6px"}), component], style={"marginRight": "12px"}
    )


def _scanner_page() -> html.Div:
    return html.Div(
        [
            html.P("Scan symbols for momentum and overbought/oversold signals."),
            _field(
                "Symbols",
                preserve(
                    dcc.Input(
                        id="scan-symbols",
                        value=", ".join(DEFAULT_SYMBOLS[:3]),
                        style={**_INPUT, "width": "320px"},
                    )
                ),
            ),
            html.Button("Scan", id="scan-run", className="demo-action", style=_BUTTON),
            dcc.Loading(html.Div(id="scan-output", style={"marginTop": "16px"}), id="scan-loading"),
        ],
        style={"padding": "16px 0"},
    )


def _backtest_page() -> html.Div:
    return html.Div(
        [
            html.P("Run a moving-average crossover backtest over several symbols at once."),
            _field(
                "Symbols",
                preserve(
                    dcc.Input(
                        id="bt-symbols", value=", ".join(DEFAULT_SYMBOLS), style={**_INPUT, "width": "320px"}
                    )
                ),
            ),
            _field(
                "Fast",
                preserve(dcc.Input(id="bt-fast", type="number", value=10, style={**_INPUT, "width": "60px"})),
            ),
            _field(
                "Slow",
                preserve(dcc.Input(id="bt-slow", type="number", value=30, style={**_INPUT, "width": "60px"})),
            ),
            html.Button("Run backtests", id="bt-run", className="demo-action", style=_BUTTON),
            html.Div(
                [
                    html.Progress(id="bt-progress", value="0", max="100", style={"width": "320px"}),
                    html.Span(id="bt-progress-label", style={"marginLeft": "8px"}),
                ],
                style={"margin": "16px 0"},
            ),
            dcc.Loading(html.Div(id="bt-output"), id="bt-loading"),
            dcc.Store(id="bt-job"),
            dcc.Interval(id="bt-tick", interval=400, disabled=True),
        ],
        style={"padding": "16px 0"},
    )


def _flags(faults: Faults) -> list[str]:
    """The fault checklist's values for ``faults``."""
    flags = []
    if faults.backend_down:
        flags.append("down")
    if faults.backend_dies:
        flags.append("dies")
    if faults.latency_seconds:
        flags.append("slow")
    if faults.bad_data:
        flags.append("bad-data")
    return flags


def _faults_page(faults: Faults) -> html.Div:
    return html.Div(
        [
            html.P("Make the simulated market backend misbehave, then go back to the other pages."),
            html.Button("Fail the next 2 calls", id="fault-transient", style=_BUTTON),
            dcc.Checklist(
                id="fault-flags",
                options=[
                    {"label": " Backend down (\u201cThis session is not running\u201d)", "value": "down"},
                    {
                        "label": " Backend dies (the market data service is paused for everyone)",
                        "value": "dies",
                    },
                    {"label": " Slow responses (2 s)", "value": "slow"},
                    {"label": " Bad data (gaps in prices)", "value": "bad-data"},
                ],
                value=_flags(faults),
                style={"margin": "12px 0"},
                labelStyle={"display": "block", "margin": "4px 0"},
            ),
            html.P(fault_state(faults)["summary"], id="fault-summary", style={"color": "#6b7280"}),
            # The knobs show the backend as it is now (calls left to fail count down by themselves).
            dcc.Interval(id="fault-sync", interval=1000),
        ],
        style={"padding": "16px 0"},
    )


# The fault knobs, in the browser: every change and a 1 s sync go to FAULTS_PATH, one at a time,
# and the boxes and summary show what the backend answers (a fresh page too, on its first call).
_KNOBS = """
async function (clicks, flags, ticks) {
    const triggered = (window.dash_clientside.callback_context.triggered_id) || "";
    let init = {method: "GET"};
    if (triggered === "fault-transient" && clicks) {
        init = {method: "POST", body: JSON.stringify({transient: 2})};
    } else if (triggered === "fault-flags") {
        init = {method: "POST", body: JSON.stringify({flags: flags || []})};
    }
    init.headers = {"Content-Type": "application/json", Accept: "application/json"};
    init.cache = "no-store";
    const previous = window.__demoKnobs || Promise.resolve();
    const call = previous.then(function () { return fetch("__PATH__", init); });
    window.__demoKnobs = call.catch(function () {});
    try {
        const response = await call;
        const state = await response.json();
        if (!response.ok) { return [window.dash_clientside.no_update, state.error]; }
        return [state.flags, state.summary];
    } catch (e) {
        return [window.dash_clientside.no_update, "The demo server cannot be reached."];
    }
}
""".replace("__PATH__", FAULTS_PATH)


def _change_faults(backend: MarketBackend, change: object) -> tuple[dict[str, Any], int]:
    """A knob's change (the JSON a ``POST FAULTS_PATH`` sent) applied: the faults, or an error;
    and the status."""
    if not isinstance(change, dict):
        return {"error": 'send a JSON object: {"flags": [...]} or {"transient": 2}'}, 400
    try:
        if "flags" in change:
            flags = change["flags"]
            if not isinstance(flags, list):
                raise ValueError("flags must be a list of fault names")
            set_flags(backend.faults, [str(flag) for flag in flags])
        if "transient" in change:
            count = change["transient"]
            if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 100:
                raise ValueError(f"transient must be a number of calls from 1 to 100, not {count!r}")
            backend.faults.transient_failures += count
    except ValueError as exc:
        return {"error": str(exc)}, 400
    return fault_state(backend.faults), 200


def _add_fault_routes(app: Dash, backend: MarketBackend) -> None:
    """``GET``/``POST FAULTS_PATH``: the backend's faults as JSON, and changes to them, on the
    app's server (Flask, Quart or FastAPI)."""
    kind = getattr(app.backend, "server_type", "flask")
    if kind == "fastapi":
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        async def fastapi_view(request: Request) -> JSONResponse:
            if request.method != "POST":
                return JSONResponse(fault_state(backend.faults))
            try:
                change = await request.json()
            except ValueError:
                change = None
            data, status = _change_faults(backend, change)
            return JSONResponse(data, status_code=status)

        app.server.add_route(FAULTS_PATH, fastapi_view, methods=["GET", "POST"])  # a plain Starlette route
        return
    if kind == "quart":
        import quart

        async def quart_view() -> Any:
            if quart.request.method != "POST":
                return quart.jsonify(fault_state(backend.faults))
            data, status = _change_faults(backend, await quart.request.get_json(silent=True))
            return quart.jsonify(data), status

        app.server.add_url_rule(FAULTS_PATH, "demo_faults", quart_view, methods=["GET", "POST"])
        return

    def faults_view() -> ResponseReturnValue:
        if request.method != "POST":
            return jsonify(fault_state(backend.faults))
        data, status = _change_faults(backend, request.get_json(silent=True))
        return jsonify(data), status

    app.server.add_url_rule(FAULTS_PATH, "demo_faults", faults_view, methods=["GET", "POST"])


def demo_secret() -> str:
    """The secret that signs the demo's session ids: ``SESSIONMW_SECRET_KEY`` if set, else the one
    in ``$XDG_STATE_HOME/sessionmw/demo-secret`` (``~/.local/state/...`` by default; made once
    with :mod:`secrets`, mode 0600, like Jupyter's cookie secret). It outlives a restart, so the
    restarted demo knows its old ids for its own and refuses them ("Session not found") instead
    of running a click on a fresh session. Printed nowhere; a state folder that cannot be
    written gives a secret for this process only."""
    configured = os.environ.get("SESSIONMW_SECRET_KEY")
    if configured:
        return configured
    state = os.environ.get("XDG_STATE_HOME", "")
    folder = (Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state") / "sessionmw"
    path = folder / "demo-secret"
    try:
        kept = path.read_text(encoding="ascii").strip()
        if kept:
            return kept
    except (OSError, UnicodeDecodeError):
        pass
    secret = secrets.token_urlsafe(32)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = folder / f".demo-secret.{os.getpid()}"
        with open(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="ascii") as out:
            out.write(secret + "\n")
        try:
            os.link(draft, path)  # not over a secret another demo made meanwhile
        except FileExistsError:
            kept = path.read_text(encoding="ascii").strip()
            if kept:
                return kept
            os.replace(draft, path)  # an empty file (a write cut short): replaced
        finally:
            draft.unlink(missing_ok=True)
    except (OSError, UnicodeDecodeError):
        _log.debug("cannot keep the demo's secret in %s: this process has its own", path)
    return secret


def create_app(
    *,
    manager: SessionManager | None = None,
    backend: MarketBackend | None = None,
    retry_sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] | None = None,
    open_for: float = 30.0,
    secret_key: str | None = None,
    server: str = "flask",
) -> Dash:
    """The demo app over ``backend`` (default: a fresh simulated one), with sessions from ``manager``.

    :param clock: the sessions' clock when no ``manager`` is given (e.g. a
        :class:`~sessionmw.testing.FakeClock`, to show idle and expiry without waiting). The
        market data breaker reads the manager's clock.
    :param open_for: seconds the market data breaker pauses calls once open.
    :param secret_key: signs the session ids (default: ``SESSIONMW_SECRET_KEY``, else a secret
        for this process only); :func:`main` passes :func:`demo_secret`.
    :param server: Dash's backend: ``flask`` (default), ``quart`` or ``fastapi``.
    """
    backend = backend if backend is not None else MarketBackend()
    if manager is None and clock is not None:
        manager = SessionManager(clock=clock)
    app = Dash(
        __name__, title="Stock analysis · sessionmw demo", suppress_callback_exceptions=True, backend=server
    )
    tabs = dcc.Tabs(
        id="page",
        value="scanner",
        mobile_breakpoint=0,  # the tabs stay side by side at phone width
        children=[
            dcc.Tab(_scanner_page(), label="Scanner", value="scanner", id="tab-scanner"),
            dcc.Tab(_backtest_page(), label="Backtest Manager", value="backtests", id="tab-backtests"),
            dcc.Tab(_faults_page(backend.faults), label="Fault knobs", value="faults", id="tab-faults"),
        ],
    )
    app.layout = html.Div(
        [
            html.H1(
                [html.Img(src=LOGO, alt="", className="demo-logo"), "Stock analysis"],
                className="demo-title",
                style={"marginBottom": "4px"},
            ),
            html.P("A sessionmw demo: sessions, friendly errors and recovery.", style={"color": "#6b7280"}),
            status_banner(),
            tabs,
        ],
        className="demo-page",
        style=_PAGE,
    )
    # The knobs are operator controls: their requests neither need nor touch a session. One
    # process: a secret of its own signs the new session ids (main() keeps one across restarts:
    # demo_secret; see the README).
    secret = secret_key or os.environ.get("SESSIONMW_SECRET_KEY") or secrets.token_urlsafe(32)
    if server == "flask":
        config = app.server.config
        config["SESSIONMW_EXCLUDE"] = [*config.get("SESSIONMW_EXCLUDE", ()), FAULTS_PATH]
        config.setdefault("SESSIONMW_SECRET_KEY", secret)
        _add_fault_routes(app, backend)
        SessionMWDash(app, manager=manager)
    else:
        _add_fault_routes(app, backend)
        SessionMWDash(app, manager=manager, exclude=[FAULTS_PATH], secret_key=secret)
    market = _market_breaker(app, backend, open_for)
    # Reading market data has no side effects: retry it. Starting a backtest is not retried.
    reads = RetryStrategy(max_attempts=3, initial_delay=0.25, sleep=retry_sleep)
    scan_symbols = guarded(retry=reads, breaker=market)(backend.scan)
    start_backtests = market.decorate(backend.start_backtests)
    # The progress poll's failures are counted here, once per job (see tick), not by @guarded.
    advance = reads(market.decorate(backend.advance))
    ledger = ActionLedger()

    @guarded_callback(
        Output("scan-output", "children"),
        Input("scan-run", "n_clicks"),
        State("scan-symbols", "value"),
        app=app,
        prevent_initial_call=True,
        running=[(Output("scan-run", "disabled"), True, False)],
        on_error=lambda exc: _stale("No results: this scan failed (see the message above)."),
    )
    def scan(_clicks: int | None, text: str | None) -> Any:
        try:
            symbols = parse_symbols(text)
        except ValueError as exc:
            return html.P(str(exc), className="input-error", style={"color": "#b91c1c"})
        return _scan_table(scan_symbols(symbols))

    @guarded_callback(
        Output("bt-job", "data"),
        Output("bt-tick", "disabled"),
        Output("bt-output", "children"),
        Output("bt-progress", "value"),
        Output("bt-progress-label", "children"),
        Input("bt-run", "n_clicks"),
        State("bt-symbols", "value"),
        State("bt-fast", "value"),
        State("bt-slow", "value"),
        app=app,
        prevent_initial_call=True,
        running=[(Output("bt-run", "disabled"), True, False)],
        on_error=lambda exc: (None, True, _stale("No results: the backtests could not start."), "0", ""),
    )
    def start(_clicks: int | None, text: str | None, fast: Any, slow: Any) -> Any:
        try:
            symbols = parse_symbols(text)
            job = start_backtests(symbols, int(fast or 0), int(slow or 0))
        except ValueError as exc:
            return None, True, html.P(str(exc), className="input-error", style={"color": "#b91c1c"}), "0", ""
        return job.id, False, "", "0", f"0 of {len(job.symbols)} done"

    @guarded_callback(
        Output("bt-progress", "value", allow_duplicate=True),
        Output("bt-progress-label", "children", allow_duplicate=True),
        Output("bt-output", "children", allow_duplicate=True),
        Output("bt-tick", "disabled", allow_duplicate=True),
        Input("bt-tick", "n_intervals"),
        State("bt-job", "data"),
        app=app,
        clears_alert=False,
        prevent_initial_call=True,
    )
    def tick(_ticks: int | None, job_id: str | None) -> Any:
        job = backend.job(job_id) if job_id else None
        if job is None:
            return "0", "", "", True
        try:
            job = advance(job.id)
        except Exception as exc:
            # One click, one error: a poll already in flight when the first failure stopped
            # the polling is logged but not counted again toward disconnecting the session.
            if ledger.counts(current_session_id() or "", "bt-tick", job.id):
                handle_callback_error(exc)
            else:  # not counted again, and not a success either: logged once already
                serving = current_request()  # the request's session, on any backend
                if serving is not None and serving.session is not None:
                    serving.session.failed = True
                _log.debug("bt-tick failed again for job %s: %s", job.id, type(exc).__name__)
            done = f"{len(job.results)} of {len(job.symbols)}"
            note = _stale(f"Stopped after {done}: the backtests could not continue (see the message above).")
            results = [note, _results_table(job)] if job.results else note
            return no_update, f"stopped after {done}", results, True
        label = f"{len(job.results)} of {len(job.symbols)} done"
        return str(round(job.progress * 100)), label, _results_table(job), job.done

    # A new run starts from an empty bar at once, in the browser (not the last run's full bar
    # and "5 of 5 done" beside the spinner until the server answers).
    app.clientside_callback(
        "function (clicks) { return ['0', '', '']; }",
        Output("bt-progress", "value", allow_duplicate=True),
        Output("bt-progress-label", "children", allow_duplicate=True),
        Output("bt-output", "children", allow_duplicate=True),
        Input("bt-run", "n_clicks"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        _KNOBS,
        Output("fault-flags", "value"),
        Output("fault-summary", "children"),
        Input("fault-transient", "n_clicks"),
        Input("fault-flags", "value"),
        Input("fault-sync", "n_intervals"),
    )
    return app


def _market_breaker(app: Dash, backend: MarketBackend, open_for: float) -> Breaker:
    """The market data breaker, kept in the sessions' store on their clock; the sessions' health
    check probes the service once the pause is over (the breaker admits one probe)."""
    state = dash_state(app)
    if state is None:
        raise RuntimeError("set SessionMWDash up on the app before its breaker")
    manager = state.manager
    # Only the service's death counts: the other faults are the session's (or the data's) problem.
    market = Breaker(
        BREAKER_NAME,
        failure_threshold=FAILURE_THRESHOLD,
        open_for=open_for,
        counts=BackendProcessError,
        manager=manager,
        clock=manager.clock,
        service="market data",
    )

    def probe(_session_id: str) -> bool:
        """Run by every health poll: when the pause is over, try the service (one probe in all)."""
        record = market.snapshot(max_age=market.state_ttl)
        due = record.state is BreakerState.OPEN and record.seconds_left(market.clock()) <= 0
        if due or record.state is BreakerState.HALF_OPEN:
            try:
                market.call(backend.ping)
            except Exception:  # still dead (open again), or another poll has the probe
                _log.info("the market data service is still paused")
        return True  # the breaker's own check says how the service is

    manager.add_health_check("market-data-probe", probe)
    return market


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port`` (the demo could not start there).

    The probe binds as the server does (``SO_REUSEADDR``, off Windows): connections of a demo
    that just stopped, left in TIME_WAIT, do not count as a listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name != "nt":  # on Windows the option would let the probe share a listener's port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo on 127.0.0.1 (the options: :func:`sessionmw.demo.add_arguments`)."""
    parser = argparse.ArgumentParser(description="The sessionmw stock-analysis demo (Dash).", epilog=EPILOG)
    add_arguments(parser)
    args = parser.parse_args(argv)
    backend = MarketBackend()
    for name in args.fault:
        apply_fault(backend.faults, name)
    try:
        settings = demo_settings(args)
        manager = SessionManager(settings)
    except ConfigurationError as exc:
        print(f"sessionmw demo: {exc}", file=sys.stderr)
        return 2
    if port_in_use(args.port):
        print(
            f"sessionmw demo: port {args.port} is in use; choose another with --port, "
            f"e.g. sessionmw demo --port {args.port + 1}",
            file=sys.stderr,
        )
        manager.close()
        return 1
    # The terminal shows one WARNING line per failure (the user already sees a friendly message)
    # and nothing per routine request: no request log, no second "running on" line.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        app = create_app(backend=backend, manager=manager, secret_key=demo_secret(), server=args.backend)
    except ImportError as exc:  # the backend's server is not installed
        print(f"sessionmw demo: {exc}", file=sys.stderr)
        manager.close()
        return 1
    app.logger.setLevel(logging.WARNING)  # Dash's own "Dash is running on ..."
    analytics = Analytics(manager).connect()  # `sessionmw stats` counts the demo's sessions
    where = mask_url(manager.settings.store_url)
    print(f"sessionmw demo: http://127.0.0.1:{args.port}/ (sessions in {where})", flush=True)
    try:
        serve(app, args.port, args.backend)
    finally:
        analytics.disconnect()
        manager.close()
    return 0


def serve(app: Dash, port: int, server: str) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until interrupted: Flask's development server, uvicorn
    (FastAPI) or Hypercorn (Quart), started here, without a request log."""
    if server == "flask":
        app.run(host="127.0.0.1", port=port, debug=False)
    elif server == "fastapi":
        import uvicorn

        uvicorn.Server(uvicorn.Config(app.server, host="127.0.0.1", port=port, log_level="warning")).run()
    else:
        import asyncio

        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.loglevel = "WARNING"  # the URL is printed once, above
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(hypercorn_serve(app.server, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
