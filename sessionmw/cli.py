"""Operator subcommands of the ``sessionmw`` command: sessions, sweep, health, config.

Exit codes scripts can trust: 0 fine, 1 unhealthy / not found / store unavailable, 2 usage or
configuration error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from sessionmw._errors import ConfigurationError, IllegalTransitionError, SessionMWError, StoreError
from sessionmw._manager import SessionManager
from sessionmw._session import Policy
from sessionmw._settings import Settings
from sessionmw._states import HealthStatus, SessionState
from sessionmw.rendering import recovery_text
from sessionmw.stores import MemoryStore, mask_url
from sessionmw.stores._base import PolicyStore

__all__ = ["add_commands"]

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2

#: Said on stderr by every command that runs on ``memory://``: it can only see its own process.
MEMORY_NOTE = (
    "sessionmw: note: the store is memory://, which holds only the sessions of the process that "
    "uses it: this command sees its own empty store, not your app's. Give the app and this "
    "command a shared store with --store or SESSIONMW_STORE_URL (sqlite:///path/sessions.db on "
    "one host, redis://host:6379/0 on several)."
)

#: Said on stderr by ``config`` on ``memory://``: the settings shown are right, but the other
#: commands will not see the app's sessions.
CONFIG_MEMORY_NOTE = (
    "sessionmw: note: the store is memory://: an app on it keeps its sessions inside its own "
    "process, where `sessionmw sessions`, `health`, `stats` and `breakers` cannot see them. Give the "
    "app and these commands a shared store with SESSIONMW_STORE_URL (sqlite:///path/sessions.db on "
    "one host, redis://host:6379/0 on several)."
)


class CommandError(Exception):
    """A failure to report in one line with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def _manager(args: argparse.Namespace) -> Iterator[SessionManager]:
    """A fail-closed manager on ``--store`` (default: the environment's store)."""
    try:
        settings = Settings.from_env(on_store_error="fail_closed")
        if args.store:
            settings = settings.replace(store_url=args.store)
        manager = SessionManager(settings)
    except ConfigurationError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if isinstance(manager.store, MemoryStore):
        print(MEMORY_NOTE, file=sys.stderr)
    try:
        saved = _saved_policy(manager)
        if saved is not None:  # the app's timeouts, not this command's defaults
            manager.policy = saved
        yield manager
    except StoreError as exc:
        raise CommandError(f"session store failed: {exc}", EXIT_UNHEALTHY) from None
    finally:
        manager.close()


def _saved_policy(manager: SessionManager) -> Policy | None:
    """The policy the store's sessions were made with (saved by the app), or None."""
    store = manager.store
    return store.saved_policy() if isinstance(store, PolicyStore) else None


def _out(args: argparse.Namespace) -> TextIO:
    stream: TextIO = getattr(args, "stdout", None) or sys.stdout
    return stream


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _sessions_list(args: argparse.Namespace) -> int:
    out = _out(args)
    with _manager(args) as manager:
        state = SessionState(args.state) if args.state else None
        now = manager.clock()
        rows: list[dict[str, Any]] = []
        for record in manager.store.records(state):
            if len(rows) >= args.limit:
                break
            rows.append(
                {
                    "id": record.session_id,
                    "state": record.state.value,
                    "errors": record.error_count,
                    "idle_seconds": round(max(0.0, now - record.last_activity), 1),
                    "expires_in_seconds": 0.0
                    if record.state.is_terminal
                    else round(max(0.0, record.expires_at(manager.policy) - now), 1),
                }
            )
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    width = max([len("ID"), *(len(row["id"]) for row in rows)])
    out.write(f"{'ID':{width}}  {'STATE':12}  {'ERRORS':>6}  {'IDLE':>8}  {'EXPIRES IN':>10}\n")
    for row in rows:
        out.write(
            f"{row['id']:{width}}  {row['state']:12}  {row['errors']:>6}  "
            f"{_age(row['idle_seconds']):>8}  {_age(row['expires_in_seconds']):>10}\n"
        )
    out.write(f"{len(rows)} session(s)\n")
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    out = _out(args)
    with _manager(args) as manager:
        health = manager.check_health(args.id)
    if args.json:
        out.write(json.dumps(health, ensure_ascii=False, indent=2) + "\n")
    elif health.status == HealthStatus.NOT_FOUND:  # for the operator, not the end-user guidance
        raise CommandError(f"no session {args.id!r}", EXIT_UNHEALTHY)
    else:
        out.write(f"{health.session_id}: {health.status}\n{recovery_text(health)}\n")
    return EXIT_OK if health.healthy else EXIT_UNHEALTHY


def _sessions_show(args: argparse.Namespace) -> int:
    out = _out(args)
    with _manager(args) as manager:
        record = manager.get_session(args.id)
        health = manager.check_health(args.id)
    if record is None:
        raise CommandError(f"no session {args.id!r}", EXIT_UNHEALTHY)
    data: dict[str, Any] = {"session": record.to_dict(), "health": dict(health)}
    data["session"].pop("v", None)
    if args.json:
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        for key, value in data["session"].items():
            if key in ("created_at", "last_activity", "state_changed_at"):
                value = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
            out.write(f"{key:18} {value}\n")
        out.write(f"{'health':18} {health.status}: {health.message}\n")
    return EXIT_OK


def _sessions_end(args: argparse.Namespace) -> int:
    out = _out(args)
    with _manager(args) as manager:
        try:
            ended = manager.end_session(args.id)
        except IllegalTransitionError as exc:
            raise CommandError(f"session {args.id!r} is already {exc.state}", EXIT_UNHEALTHY) from None
    if not ended:
        raise CommandError(f"no session {args.id!r}", EXIT_UNHEALTHY)
    out.write(f"ended {args.id}\n")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    out = _out(args)
    with _manager(args) as manager:
        total = 0
        while True:
            changes = manager.sweep(limit=args.batch)
            total += len(changes)
            if len(changes) < args.batch:
                break
    out.write(f"expired {total} session(s)\n")
    return EXIT_OK


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d`` or plain seconds, as seconds."""
    value, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"window {text!r} is not like 90s, 30m, 1h or 2d") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"window {text!r} must be positive")
    return seconds


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _stats(args: argparse.Namespace) -> int:
    out = _out(args)
    with _manager(args) as manager:
        result = manager.stats(window=args.window)
        counting = _counting(manager)
    if args.json:
        out.write(json.dumps({**result.as_dict(), "counting": counting}, indent=2) + "\n")
        return EXIT_OK
    if not counting:
        out.write(
            "no process has attached analytics counters to this store, so every figure is zero: "
            "connect sessionmw.analytics.Analytics(manager) (or sessionmw.metrics.instrument) "
            "in the app\n"
        )
    c = result.counts
    frequency = result.error_frequency_per_session_hour
    latency = result.mean_latency_seconds
    out.write(f"window: {_age(result.window_seconds)}\n")
    for name in ("created", "expired", "ended", "disconnected", "reconnected", "recovered"):
        out.write(f"  sessions {name:14} {c.get('sessions.' + name, 0):>8g}\n")
    out.write(f"  errors                  {c.get('errors.total', 0):>8g}\n")
    out.write(f"  retries                 {c.get('retries.attempts', 0):>8g}\n")
    out.write(f"expiration rate           {_percent(result.expiration_rate)}\n")
    out.write(
        "errors per session-hour   "
        + ("n/a" if frequency is None else f"{frequency:.2f}")
        + f"  ({result.session_hours:.2f} session-hours)\n"
    )
    out.write(f"retry recovery rate       {_percent(result.retry_recovery_rate)}\n")
    out.write(f"reconnect rate            {_percent(result.reconnect_rate)}\n")
    out.write(f"reconnects that held      {_percent(result.reconnect_held_rate)}\n")
    out.write(
        "mean latency              " + ("n/a" if latency is None else f"{latency * 1000:.1f} ms") + "\n"
    )
    kinds = sorted((k.removeprefix("errors.kind."), v) for k, v in c.items() if k.startswith("errors.kind."))
    if kinds:
        out.write("errors by kind:\n")
        for kind, value in kinds:
            out.write(f"  {kind:30} {value:>8g}\n")
    return EXIT_OK


def _counting(manager: SessionManager) -> bool:
    """Whether any process ever attached analytics to the manager's store (the all-time bucket
    has counts: :meth:`~sessionmw.analytics.Analytics.connect` adds one)."""
    from sessionmw.analytics import TOTAL, counters_for

    return bool(counters_for(manager.store).read([TOTAL]).get(TOTAL))


def _whole_number(least: int, must: str) -> Callable[[str], int]:
    """An argument type: a whole number of at least ``least``; else the error says it ``must`` be."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} must be {must}")
        return value

    return parse


_positive = _whole_number(1, "a positive whole number (1 or more)")
_not_negative = _whole_number(0, "0 or more")


def _config(args: argparse.Namespace) -> int:
    out = _out(args)
    try:
        settings = Settings.from_env()
        if args.store:
            settings = settings.replace(store_url=args.store)
    except ConfigurationError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if str(settings.store_url).partition("://")[0].lower() == "memory":
        print(CONFIG_MEMORY_NOTE, file=sys.stderr)
    rows = {name: (getattr(settings, name), source) for name, source in settings.sources.items()}
    saved = _policy_in(settings)
    if saved is not None:  # what the app's sessions are judged by: the other commands use it too
        for name, value in _policy_settings(saved).items():
            if value != getattr(settings, name):
                rows[name] = (value, "the store: the app's sessions are made with it")
    if "store_url" in rows:  # a password in the URL is not printed
        url, source = rows["store_url"]
        rows["store_url"] = (mask_url(str(url)), source)
    # Read by the web adapters, not by Settings; every worker process must share one.
    secret = os.environ.get("SESSIONMW_SECRET_KEY")
    rows["secret_key"] = (
        ("***", "SESSIONMW_SECRET_KEY") if secret else ("(not set: a random key per process)", "default")
    )
    if args.json:
        payload = {name: {"value": value, "source": source} for name, (value, source) in rows.items()}
        out.write(json.dumps(payload, indent=2) + "\n")
        return EXIT_OK
    for name, (value, source) in rows.items():
        out.write(f"{name:32} {value!s:30} ({source})\n")
    return EXIT_OK


def _policy_in(settings: Settings) -> Policy | None:
    """The policy saved in the settings' store (None: memory://, none saved, or unreachable)."""
    if str(settings.store_url).partition("://")[0].lower() == "memory":
        return None
    try:
        manager = SessionManager(settings.replace(on_store_error="fail_closed"))
    except ConfigurationError:
        return None
    try:
        return _saved_policy(manager)
    except StoreError:
        return None
    finally:
        manager.close()


def _policy_settings(policy: Policy) -> dict[str, float]:
    """``policy`` as the settings that make it."""
    return {
        "session_timeout_minutes": policy.timeout / 60,
        "idle_after_seconds": policy.idle_after,
        "absolute_timeout_hours": policy.absolute_timeout / 3600,
        "max_error_threshold": policy.error_threshold,
    }


def _with_store(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--store", metavar="URL", help="store URL (default: SESSIONMW_STORE_URL or memory://)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


#: The help of a command's session id argument.
ID_HELP = (
    "the session id; it may begin with '-' (-Abc...): any argument that is not exactly one of "
    "the command's options (spelled in full) is the id. An id spelled exactly like an option "
    "goes last, after '--' (sessions show --store URL -- --json)"
)


class _SessionIdArguments(argparse.ArgumentParser):
    """The arguments of a command that names a session: its one positional argument is an id,
    which may begin with '-' (URL-safe base64 ids do, about one time in 64), so only the
    command's own option strings, exactly (``--store URL``, ``--store=URL``), are options."""

    def _parse_optional(self, arg_string: str) -> Any:
        if arg_string.startswith("-") and arg_string != "--":
            name = arg_string.partition("=")[0] if arg_string.startswith("--") else arg_string
            if name not in self._option_string_actions:
                return None  # a positional argument: the id
        return super()._parse_optional(arg_string)


def _takes_session_id(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` its session id argument (see :class:`_SessionIdArguments`)."""
    parser.__class__ = _SessionIdArguments  # argparse makes subparsers of one class per level
    parser.add_argument("id", metavar="ID", help=ID_HELP)
    return parser


def add_commands(sub: Subparsers) -> None:
    """Add ``sessions``, ``health``, ``sweep`` and ``config`` to the command line."""
    sessions = sub.add_parser("sessions", help="list, show or end sessions")
    actions = sessions.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = _with_store(actions.add_parser("list", help="list sessions"))
    listing.add_argument("--state", choices=[state.value for state in SessionState], help="only this state")
    listing.add_argument(
        "--limit", type=_not_negative, default=1000, help="at most this many rows (default 1000; 0: none)"
    )
    listing.set_defaults(run=_sessions_list)
    show = _takes_session_id(_with_store(actions.add_parser("show", help="one session's record and health")))
    show.set_defaults(run=_sessions_show)
    end = _takes_session_id(_with_store(actions.add_parser("end", help="end a session")))
    end.set_defaults(run=_sessions_end)
    health = _takes_session_id(
        _with_store(sub.add_parser("health", help="a session's health; exit 1 unless healthy"))
    )
    health.set_defaults(run=_health)
    sweep = _with_store(sub.add_parser("sweep", help="expire due sessions now"))
    sweep.add_argument("--batch", type=_positive, default=1000, help="sessions per store call (default 1000)")
    sweep.set_defaults(run=_sweep)
    stats = _with_store(sub.add_parser("stats", help="counters and rates over a window, from every process"))
    stats.add_argument("--window", type=parse_window, default=3600.0, help="e.g. 15m, 1h, 2d (default 1h)")
    stats.set_defaults(run=_stats)
    config = _with_store(sub.add_parser("config", help="effective settings and where each came from"))
    config.set_defaults(run=_config)
    _add_breaker_command(sub)


def _add_breaker_command(sub: Subparsers) -> None:
    """``breakers``: list the store's circuit breakers; ``breakers open|close|disable NAME``."""
    breakers = _with_store(
        sub.add_parser("breakers", help="list circuit breakers; open, close or disable one (maintenance)")
    )
    breakers.add_argument(
        "action", nargs="?", default="list", choices=["list", "open", "close", "disable"],
        help="default: list",
    )
    breakers.add_argument("name", nargs="?", help="the breaker (for open, close, disable)")
    breakers.set_defaults(run=_breakers)


def _breakers(args: argparse.Namespace) -> int:
    from sessionmw._breaker import Breaker, breakers_for
    from sessionmw.stores.breakers import CorruptBreakerError

    out = _out(args)
    with _manager(args) as manager:
        backend = breakers_for(manager.store)
        found = backend.scan()
        if args.action != "list":
            if not args.name:
                raise CommandError(f"breakers {args.action} needs a breaker NAME", EXIT_USAGE)
            names = sorted(
                item.breaker if isinstance(item, CorruptBreakerError) else item.name for item in found
            )
            if args.name not in names:
                raise CommandError(
                    f"no breaker named {args.name!r} in this store (it has: {', '.join(names) or 'none'});"
                    " a breaker is there once the app has used it",
                    EXIT_UNHEALTHY,
                )
            breaker = Breaker(args.name, manager=manager)
            {"open": breaker.force_open, "close": breaker.close, "disable": breaker.disable}[args.action]()
            found = backend.scan()
        now = manager.clock()
    unreadable = [item for item in found if isinstance(item, CorruptBreakerError)]
    for problem in unreadable:  # one line each; the others are listed below
        print(f"sessionmw: {problem}", file=sys.stderr)
    code = EXIT_UNHEALTHY if unreadable else EXIT_OK
    rows = [
        {
            "name": r.name,
            "state": r.state.value,
            "failures": r.failures,
            "retry_in": math.ceil(r.seconds_left(now)) if r.state.value == "open" else None,
            "opens": r.opens,
            "successful": r.successful,
            "failed": r.failed,
            "rejected": r.rejected,
            "slow": r.slow,
        }
        for r in found
        if not isinstance(r, CorruptBreakerError) and (args.action == "list" or r.name == args.name)
    ]
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return code
    if not rows:
        out.write("no readable circuit breakers\n" if unreadable else "no circuit breakers in this store\n")
        return code
    out.write(
        f"{'NAME':24} {'STATE':12} {'RETRY IN':>8} {'OPENS':>6} {'OK':>8} {'FAILED':>8} {'REJECTED':>8}\n"
    )
    for row in rows:
        retry_in = "" if row["retry_in"] is None else f"{row['retry_in']}s"
        out.write(
            f"{row['name']:24} {row['state']:12} {retry_in:>8} {row['opens']:>6} {row['successful']:>8}"
            f" {row['failed']:>8} {row['rejected']:>8}\n"
        )
    return code


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one subcommand; turn known failures into one line on stderr and an exit code."""
    try:
        return command(args)
    except CommandError as exc:
        print(f"sessionmw: {exc}", file=sys.stderr)
        return exc.code
    except SessionMWError as exc:
        print(f"sessionmw: {exc}", file=sys.stderr)
        return EXIT_UNHEALTHY
    except ValueError as exc:  # e.g. a malformed session id
        print(f"sessionmw: {exc}", file=sys.stderr)
        return EXIT_USAGE
