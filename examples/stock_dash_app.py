"""The stock-analysis demo: a Dash app whose backend fails on demand, with sessionmw attached.

Run it with ``sessionmw demo`` (or ``python examples/stock_dash_app.py``) and open the URL it
prints. The **Scanner** page scans symbols; the **Backtest Manager** runs batch backtests with a
progress bar; the **Fault knobs** page makes the simulated backend fail: transient errors (a
retry gets through), a dead backend ("This session is not running"), slow responses, bad data.
Failures show a friendly alert, repeated ones disconnect the session and the banner offers
Reconnect; the symbols you typed survive a page refresh.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html
from market_backend import DEFAULT_SYMBOLS, BacktestJob, Faults, MarketBackend, ScanRow, parse_symbols

from sessionmw import SessionManager, Settings
from sessionmw.guard import guarded
from sessionmw.integrations.dash import SessionMWDash, guarded_callback, preserve, status_banner
from sessionmw.retry import RetryStrategy

__all__ = ["FAULT_CHOICES", "apply_fault", "create_app", "main"]

_THRESHOLD_ENV = ("SESSIONMW_MAX_ERROR_THRESHOLD", "MAX_ERROR_THRESHOLD")
#: The ``--fault`` choices of the command line.
FAULT_CHOICES = ("transient", "down", "slow", "bad-data")

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
    elif name == "slow":
        faults.latency_seconds = 2.0
    elif name == "bad-data":
        faults.bad_data = True
    else:
        raise ValueError(f"unknown fault {name!r}: choose from {', '.join(FAULT_CHOICES)}")


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
            html.Button("Scan", id="scan-run", style=_BUTTON),
            html.Div(id="scan-output", style={"marginTop": "16px"}),
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
            html.Button("Run backtests", id="bt-run", style=_BUTTON),
            html.Div(
                [
                    html.Progress(id="bt-progress", value="0", max="100", style={"width": "320px"}),
                    html.Span(id="bt-progress-label", style={"marginLeft": "8px"}),
                ],
                style={"margin": "16px 0"},
            ),
            html.Div(id="bt-output"),
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
                    {"label": " Slow responses (2 s)", "value": "slow"},
                    {"label": " Bad data (gaps in prices)", "value": "bad-data"},
                ],
                value=_flags(faults),
                style={"margin": "12px 0"},
                labelStyle={"display": "block", "margin": "4px 0"},
            ),
            html.P(id="fault-summary", style={"color": "#6b7280"}),
        ],
        style={"padding": "16px 0"},
    )


def create_app(
    *,
    manager: SessionManager | None = None,
    backend: MarketBackend | None = None,
    retry_sleep: Callable[[float], object] = time.sleep,
) -> Dash:
    """The demo app over ``backend`` (default: a fresh simulated one), with sessions from ``manager``."""
    backend = backend if backend is not None else MarketBackend()
    app = Dash(__name__, title="Stock analysis · sessionmw demo", suppress_callback_exceptions=True)
    tabs = dcc.Tabs(
        id="page",
        value="scanner",
        children=[
            dcc.Tab(_scanner_page(), label="Scanner", value="scanner", id="tab-scanner"),
            dcc.Tab(_backtest_page(), label="Backtest Manager", value="backtests", id="tab-backtests"),
            dcc.Tab(_faults_page(backend.faults), label="Fault knobs", value="faults", id="tab-faults"),
        ],
    )
    app.layout = html.Div(
        [
            html.H1("📈 Stock analysis", style={"marginBottom": "4px"}),
            html.P("A sessionmw demo: sessions, friendly errors and recovery.", style={"color": "#6b7280"}),
            status_banner(),
            tabs,
        ],
        style=_PAGE,
    )
    SessionMWDash(app, manager=manager)
    # Reading market data has no side effects: retry it (@guarded). Starting a backtest is not retried.
    reads = RetryStrategy(max_attempts=3, initial_delay=0.25, sleep=retry_sleep)
    scan_symbols = guarded(retry=reads)(backend.scan)
    advance = guarded(retry=reads)(backend.advance)

    @guarded_callback(
        Output("scan-output", "children"),
        Input("scan-run", "n_clicks"),
        State("scan-symbols", "value"),
        app=app,
        prevent_initial_call=True,
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
    )
    def start(_clicks: int | None, text: str | None, fast: Any, slow: Any) -> Any:
        try:
            symbols = parse_symbols(text)
            job = backend.start_backtests(symbols, int(fast or 0), int(slow or 0))
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
        job = advance(job.id)
        label = f"{len(job.results)} of {len(job.symbols)} done"
        return str(round(job.progress * 100)), label, _results_table(job), job.done

    @app.callback(
        Output("fault-summary", "children"),
        Input("fault-transient", "n_clicks"),
        Input("fault-flags", "value"),
    )
    def set_faults(clicks: int | None, flags: list[str] | None) -> str:
        faults = backend.faults
        if ctx.triggered_id == "fault-transient" and clicks:
            apply_fault(faults, "transient")
        elif ctx.triggered_id == "fault-flags":
            chosen = flags or []
            faults.backend_down = "down" in chosen
            faults.latency_seconds = 2.0 if "slow" in chosen else 0.0
            faults.bad_data = "bad-data" in chosen
        active = faults.describe()
        return "Active faults: " + (", ".join(active) if active else "none")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo on 127.0.0.1."""
    parser = argparse.ArgumentParser(description="The sessionmw stock-analysis demo (Dash).")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument(
        "--fault", action="append", choices=FAULT_CHOICES, default=[], help="start with a fault on"
    )
    args = parser.parse_args(argv)
    backend = MarketBackend()
    for name in args.fault:
        apply_fault(backend.faults, name)
    settings = Settings.from_env()
    if not any(name in os.environ for name in _THRESHOLD_ENV):
        settings = settings.replace(max_error_threshold=3)  # the demo disconnects after 3 failures
    app = create_app(backend=backend, manager=SessionManager(settings))
    print(f"sessionmw demo: http://127.0.0.1:{args.port}/", flush=True)
    app.run(host="127.0.0.1", port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
