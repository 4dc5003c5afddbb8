"""The ``sessionmw demo`` command: serve the stock-analysis demo app on 127.0.0.1.

The app is ``examples/stock_dash_app.py`` in the repository checkout (``examples/`` is not part
of the installed package); it runs on the embedded default store (``memory://``) unless
``--store`` or ``SESSIONMW_STORE_URL`` names another. Its options are defined here once
(:func:`add_arguments`), for ``sessionmw demo`` and the app's own ``main``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from sessionmw._errors import ConfigurationError
from sessionmw._settings import Settings

__all__ = [
    "DEMO_ERROR_THRESHOLD",
    "DEMO_FILE",
    "DEMO_POLL_SECONDS",
    "EPILOG",
    "FAULT_CHOICES",
    "SERVERS",
    "DemoUnavailableError",
    "add_arguments",
    "add_command",
    "demo_settings",
    "load_demo",
    "run_demo",
]

#: The ``--backend`` values: Dash's backends the demo serves on.
SERVERS = ("flask", "fastapi", "quart")
#: Where the demo app lives in a repository checkout.
DEMO_FILE = Path(__file__).resolve().parent.parent / "examples" / "stock_dash_app.py"
_MODULE = "stock_dash_app"
#: The ``--fault`` values: the backend faults the demo can start with (docs/dash.md has a row each).
FAULT_CHOICES = ("transient", "down", "dies", "slow", "bad-data")
#: The demo disconnects a session after this many failed actions in a row, unless
#: ``SESSIONMW_MAX_ERROR_THRESHOLD`` says otherwise.
DEMO_ERROR_THRESHOLD = 3
_THRESHOLD_ENV = ("SESSIONMW_MAX_ERROR_THRESHOLD", "MAX_ERROR_THRESHOLD")
#: Seconds between the demo page's health polls, unless ``SESSIONMW_HEALTH_CHECK_INTERVAL_SECONDS``
#: says otherwise: a server that goes away shows within seconds, even without a click.
DEMO_POLL_SECONDS = 5.0


class DemoUnavailableError(RuntimeError):
    """The demo cannot start here (no repository checkout, or Dash is not installed)."""


def load_demo(path: Path | None = None) -> ModuleType:
    """Import the demo app module from ``path`` (its folder goes on ``sys.path`` for its helpers).

    :raises DemoUnavailableError: with a one-line reason when the file or Dash is missing.
    """
    if path is None:
        path = DEMO_FILE
    if not path.is_file():
        raise DemoUnavailableError(
            f"the demo app is not here ({path}): run `sessionmw demo` from a clone of the repository"
        )
    if importlib.util.find_spec("dash") is None:
        raise DemoUnavailableError("the demo needs Dash: pip install 'sessionmw[dash]'")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    existing = sys.modules.get(_MODULE)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise DemoUnavailableError(f"cannot load the demo app from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # Dash finds the app's folder through its module
    spec.loader.exec_module(module)
    return module


def run_demo(
    port: int = 8050,
    faults: list[str] | None = None,
    *,
    store: str | None = None,
    idle_after: float | None = None,
    timeout: float | None = None,
    backend: str = "flask",
) -> int:
    """Start the demo on ``http://127.0.0.1:<port>/`` (prints the URL) until interrupted.

    :param backend: Dash's server, one of :data:`SERVERS`.
    :param store: the session store URL (default: ``SESSIONMW_STORE_URL``, else ``memory://``).
    :param idle_after: seconds without activity before a session is idle (default: the settings').
    :param timeout: minutes without activity before a session expires (default: the settings').
    """
    module = load_demo()
    argv = ["--port", str(port), "--backend", backend]
    for name in faults or []:
        argv += ["--fault", name]
    if store is not None:
        argv += ["--store", store]
    if idle_after is not None:
        argv += ["--idle-after", repr(idle_after)]
    if timeout is not None:
        argv += ["--timeout", repr(timeout)]
    status: int = module.main(argv)
    return status


def demo_settings(args: argparse.Namespace) -> Settings:
    """The demo's settings: the environment's, with the options of :func:`add_arguments` on top,
    :data:`DEMO_ERROR_THRESHOLD` and :data:`DEMO_POLL_SECONDS` unless the environment sets them.

    :raises ConfigurationError: naming the option or variable that is not valid.
    """
    settings = Settings.from_env()
    changes: dict[str, object] = {}
    if not any(name in os.environ for name in _THRESHOLD_ENV):
        changes["max_error_threshold"] = DEMO_ERROR_THRESHOLD
    if settings.sources.get("health_check_interval_seconds", "default") == "default":
        changes["health_check_interval_seconds"] = DEMO_POLL_SECONDS
    if args.store:
        changes["store_url"] = args.store
    if args.idle_after is not None:
        changes["idle_after_seconds"] = args.idle_after
    if args.timeout is not None:
        changes["session_timeout_minutes"] = args.timeout
    try:
        return settings.replace(**changes) if changes else settings
    except ConfigurationError as exc:
        raise ConfigurationError(_as_options(str(exc))) from None


def _as_options(text: str) -> str:
    """A settings error in the words of the demo's options."""
    for name, option in (("idle_after_seconds", "--idle-after"), ("session_timeout_minutes", "--timeout")):
        text = text.replace(name, option)
    return text


def _demo(args: argparse.Namespace) -> int:
    try:
        return run_demo(
            args.port,
            args.fault,
            store=args.store,
            idle_after=args.idle_after,
            timeout=args.timeout,
            backend=args.backend,
        )
    except DemoUnavailableError as exc:
        print(f"sessionmw demo: {exc}", file=sys.stderr)
        return 1


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, not {port}")
    return port


def _positive(unit: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{unit} must be a number, not {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{unit} must be a positive number, not {text!r}")
        return value

    return parse


#: What ``--help`` says after the options.
EPILOG = (
    "A walk through idle and expiry without waiting: sessionmw demo --idle-after 20 --timeout 1. "
    "The operator's commands see the demo's sessions on a shared store: sessionmw demo --store "
    "sqlite:///demo-sessions.db, then sessionmw sessions list --store sqlite:///demo-sessions.db."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options: ``--port``, ``--backend``, ``--fault``, ``--store``, ``--idle-after``,
    ``--timeout``."""
    parser.add_argument("--port", type=_port, default=8050, help="port on 127.0.0.1 (default 8050)")
    parser.add_argument(
        "--backend",
        choices=SERVERS,
        default="flask",
        help="Dash's server: flask (default, its development server), fastapi (uvicorn) or quart (Hypercorn)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=FAULT_CHOICES,
        metavar="FAULT",
        help="start with a backend fault on (repeatable): " + ", ".join(FAULT_CHOICES),
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the session store (default: SESSIONMW_STORE_URL, else memory://); give the operator's "
        "commands the same one, e.g. sqlite:///demo-sessions.db",
    )
    parser.add_argument(
        "--idle-after",
        type=_positive("--idle-after"),
        metavar="SECONDS",
        help="seconds without activity before a session is idle (default: "
        "SESSIONMW_IDLE_AFTER_SECONDS, else 300)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive("--timeout"),
        metavar="MINUTES",
        help="minutes without activity before a session expires (default: "
        "SESSIONMW_SESSION_TIMEOUT_MINUTES, else 30)",
    )


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand to the ``sessionmw`` command line."""
    parser = sub.add_parser("demo", help="run the stock-analysis demo app (Dash) on 127.0.0.1", epilog=EPILOG)
    add_arguments(parser)
    parser.set_defaults(run=_demo)
