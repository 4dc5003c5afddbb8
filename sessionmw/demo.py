"""The ``sessionmw demo`` command: serve the stock-analysis demo app on 127.0.0.1.

The app is ``examples/stock_dash_app.py`` in the repository checkout (``examples/`` is not part
of the installed package); it runs on the embedded default store (``memory://``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["DEMO_FILE", "DemoUnavailableError", "add_command", "load_demo", "run_demo"]

#: Where the demo app lives in a repository checkout.
DEMO_FILE = Path(__file__).resolve().parent.parent / "examples" / "stock_dash_app.py"
_MODULE = "stock_dash_app"


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


def run_demo(port: int = 8050, faults: list[str] | None = None) -> int:
    """Start the demo on ``http://127.0.0.1:<port>/`` (prints the URL) until interrupted."""
    module = load_demo()
    argv = ["--port", str(port)]
    for name in faults or []:
        argv += ["--fault", name]
    status: int = module.main(argv)
    return status


def _demo(args: argparse.Namespace) -> int:
    try:
        return run_demo(args.port, args.fault)
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


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand to the ``sessionmw`` command line."""
    parser = sub.add_parser("demo", help="run the stock-analysis demo app (Dash) on 127.0.0.1")
    parser.add_argument("--port", type=_port, default=8050, help="port on 127.0.0.1 (default 8050)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=("transient", "down", "slow", "bad-data"),
        help="start with a backend fault on (repeatable)",
    )
    parser.set_defaults(run=_demo)
