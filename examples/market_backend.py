"""A simulated market-data backend for the stock-analysis demo, with knobs to inject faults.

Prices are generated deterministically from the symbol (a seeded random walk, no network), so
the demo shows the same numbers every time. :class:`Faults` makes the backend misbehave the way
real ones do: transient failures, a session's backend process that is not running ("This session
is not running"), a market data service that dies for everyone, slow answers, bad data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Callable

from sessionmw import BackendProcessError, DataLoadError, TransientError

__all__ = [
    "DEFAULT_SYMBOLS",
    "BacktestJob",
    "BacktestResult",
    "Faults",
    "MarketBackend",
    "ScanRow",
    "parse_symbols",
]

#: The symbols the demo starts with.
DEFAULT_SYMBOLS = ("ACME", "GLOBX", "INITECH", "UMBRL", "WAYNE")
_SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,9}")
_DAYS = 250


def parse_symbols(text: str | None) -> list[str]:
    """Symbols from free text (commas or spaces), upper-cased, without duplicates.

    :raises ValueError: naming the first entry that is not a symbol, or when there is none.
    """
    symbols: list[str] = []
    for raw in re.split(r"[\s,;]+", text or ""):
        if not raw:
            continue
        symbol = raw.upper()
        if not _SYMBOL.fullmatch(symbol):
            raise ValueError(f"{raw!r} is not a ticker symbol (1 to 10 letters, digits or dots)")
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise ValueError("enter at least one ticker symbol, e.g. ACME")
    return symbols


@dataclasses.dataclass
class Faults:
    """What goes wrong in the backend; change the fields at any time (the demo's fault panel does)."""

    #: The next this-many calls fail with a transient error (a retry gets through).
    transient_failures: int = 0
    #: Every call fails with ``RuntimeError("This session is not running")``, the seed's symptom.
    backend_down: bool = False
    #: The market data service has died: every call fails with :class:`BackendProcessError`
    #: (the failures the demo's circuit breaker counts).
    backend_dies: bool = False
    #: Seconds each call takes.
    latency_seconds: float = 0.0
    #: Price series come back with gaps (NaN), which the backend rejects as a data error.
    bad_data: bool = False

    def describe(self) -> list[str]:
        """The active faults, as short labels."""
        active = []
        if self.transient_failures:
            count = self.transient_failures
            active.append("next call fails" if count == 1 else f"next {count} calls fail")
        if self.backend_down:
            active.append("backend down")
        if self.backend_dies:
            active.append("backend dead")
        if self.latency_seconds:
            active.append(f"{self.latency_seconds:g}s latency")
        if self.bad_data:
            active.append("bad data")
        return active


@dataclasses.dataclass(frozen=True)
class ScanRow:
    """One line of the scanner: where a symbol stands."""

    symbol: str
    last: float
    change_pct: float
    momentum_pct: float
    rsi: float
    signal: str


@dataclasses.dataclass(frozen=True)
class BacktestResult:
    """The outcome of a moving-average crossover backtest on one symbol."""

    symbol: str
    total_return_pct: float
    max_drawdown_pct: float
    trades: int


@dataclasses.dataclass
class BacktestJob:
    """A batch of backtests, run one symbol per :meth:`MarketBackend.advance` call."""

    id: str
    symbols: list[str]
    fast: int
    slow: int
    results: list[BacktestResult] = dataclasses.field(default_factory=list)

    @property
    def done(self) -> bool:
        """True once every symbol has a result."""
        return len(self.results) >= len(self.symbols)

    @property
    def progress(self) -> float:
        """Finished share, 0.0 to 1.0."""
        return len(self.results) / len(self.symbols) if self.symbols else 1.0


class MarketBackend:
    """Prices, a scanner and batch backtests over a deterministic simulated market.

    :param faults: the fault knobs (shared, mutable).
    :param sleep: how latency is spent (inject a fake in tests).
    """

    def __init__(
        self, faults: Faults | None = None, *, sleep: Callable[[float], object] = time.sleep
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self.sleep = sleep
        #: Calls made so far (each one, failed or not).
        self.calls = 0
        self._jobs: dict[str, BacktestJob] = {}
        self._lock = threading.Lock()

    # -- faults -------------------------------------------------------------------------------

    def _call(self, what: str) -> None:
        """Apply the faults to one backend call."""
        with self._lock:
            self.calls += 1
            transient = self.faults.transient_failures > 0
            if transient:
                self.faults.transient_failures -= 1
        if self.faults.latency_seconds:
            self.sleep(self.faults.latency_seconds)
        self.ping()
        if self.faults.backend_down:
            raise RuntimeError("This session is not running")
        if transient:
            raise TransientError(f"market data service busy during {what}")

    def ping(self) -> None:
        """Check that the market data service is alive (a breaker's probe); not counted in :attr:`calls`.

        :raises BackendProcessError: while the ``backend_dies`` fault is on.
        """
        if self.faults.backend_dies:
            raise BackendProcessError("the market data service stopped")

    # -- data ---------------------------------------------------------------------------------

    def prices(self, symbol: str, days: int = _DAYS) -> list[float]:
        """Daily closes of ``symbol``, oldest first (the same every time).

        :raises DataLoadError: when the series has gaps (the ``bad_data`` fault).
        """
        self._call(f"prices({symbol})")
        series = _walk(symbol, days)
        if self.faults.bad_data:
            series[len(series) // 2] = math.nan
        if any(math.isnan(price) for price in series):
            raise DataLoadError(f"price series of {symbol} has gaps")
        return series

    def scan(self, symbols: list[str]) -> list[ScanRow]:
        """The scanner table for ``symbols``: last price, daily change, 20-day momentum, RSI, signal."""
        rows = []
        for symbol in symbols:
            closes = self.prices(symbol)
            last, previous = closes[-1], closes[-2]
            momentum = (last / closes[-21] - 1) * 100
            rsi = _rsi(closes[-15:])
            signal = "BUY" if momentum > 2 and rsi < 70 else "SELL" if momentum < -2 and rsi > 30 else "HOLD"
            rows.append(
                ScanRow(
                    symbol,
                    round(last, 2),
                    round((last / previous - 1) * 100, 2),
                    round(momentum, 2),
                    round(rsi, 1),
                    signal,
                )
            )
        return rows

    # -- backtests ----------------------------------------------------------------------------

    def start_backtests(self, symbols: list[str], fast: int = 10, slow: int = 30) -> BacktestJob:
        """Queue a batch of crossover backtests and return its job.

        :raises ValueError: when the windows are not ``1 <= fast < slow <= 200``.
        """
        if not (1 <= fast < slow <= 200):
            raise ValueError(
                f"moving-average windows must satisfy 1 <= fast < slow <= 200, not {fast}/{slow}"
            )
        self._call("start_backtests")
        job = BacktestJob(secrets.token_hex(8), list(symbols), fast, slow)
        with self._lock:
            self._jobs[job.id] = job
        return job

    def job(self, job_id: str) -> BacktestJob | None:
        """The job with ``job_id``, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def advance(self, job_id: str) -> BacktestJob:
        """Run the next symbol of a job and return the job.

        :raises KeyError: for an unknown job.
        """
        job = self.job(job_id)
        if job is None:
            raise KeyError(f"no backtest job {job_id!r}")
        if not job.done:
            symbol = job.symbols[len(job.results)]
            job.results.append(_crossover(symbol, self.prices(symbol), job.fast, job.slow))
        return job


def _walk(symbol: str, days: int) -> list[float]:
    """A seeded geometric random walk: the symbol's price history."""
    seed = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    drift = rng.uniform(-0.0008, 0.0012)
    volatility = rng.uniform(0.01, 0.03)
    price = rng.uniform(20, 400)
    closes = []
    for _ in range(days):
        price *= math.exp(drift + volatility * rng.gauss(0.0, 1.0))
        closes.append(price)
    return closes


def _rsi(closes: list[float]) -> float:
    """The relative strength index over ``closes`` (0-100)."""
    gains = losses = 0.0
    for before, after in itertools.pairwise(closes):
        move = after - before
        if move > 0:
            gains += move
        else:
            losses -= move
    if losses == 0:
        return 100.0
    return 100 - 100 / (1 + gains / losses)


def _sma(closes: list[float], end: int, window: int) -> float:
    return sum(closes[end - window : end]) / window


def _crossover(symbol: str, closes: list[float], fast: int, slow: int) -> BacktestResult:
    """Long while the fast average is above the slow one; return, drawdown and trade count."""
    equity, peak, drawdown, trades = 1.0, 1.0, 0.0, 0
    holding = False
    for day in range(slow, len(closes)):
        if holding:
            equity *= closes[day] / closes[day - 1]
        want = _sma(closes, day, fast) > _sma(closes, day, slow)
        if want != holding:
            holding = want
            trades += 1
        peak = max(peak, equity)
        drawdown = max(drawdown, 1 - equity / peak)
    return BacktestResult(symbol, round((equity - 1) * 100, 2), round(drawdown * 100, 2), trades)
