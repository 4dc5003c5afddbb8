"""The ``sessionmw`` command (also ``python -m sessionmw``).

Subcommands are registered in :data:`COMMANDS`; with no subcommand it runs the tour.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["COMMANDS", "main"]


def _tour(args: argparse.Namespace) -> int:
    from sessionmw.tour import run_tour

    run_tour(as_json=args.json)
    return 0


def _add_tour(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("tour", help="show the life of one session, step by step (default)")
    parser.add_argument("--json", action="store_true", help="one JSON health report per step")
    parser.set_defaults(run=_tour)


def _add_operations(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sessionmw.cli import add_commands

    add_commands(sub)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sessionmw.demo import add_command

    add_command(sub)


#: Functions that add subcommands to the parser.
COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_tour,
    _add_operations,
    _add_demo,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 fine, 1 unhealthy or not found, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="sessionmw", description="Session tracking and friendly errors for Python web apps."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["tour", *(argv or [])])
    from sessionmw.cli import run

    command: Callable[[argparse.Namespace], int] = args.run
    try:
        code = run(command, args)
        sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
    except BrokenPipeError:
        return _reader_gone()
    return code


def _reader_gone() -> int:
    """The reader of stdout went away (``sessionmw tour | head``): stop quietly with exit 1.

    As the Python docs advise for SIGPIPE: point stdout at devnull so the flush at exit does not
    raise again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


if __name__ == "__main__":
    sys.exit(main())
