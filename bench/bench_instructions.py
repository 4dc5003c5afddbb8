"""Instructions per request: bench_wsgi's in-process variants counted by callgrind, not timed.

Run: .venv/bin/python bench/bench_instructions.py [--few N] [--many M] [--variant NAME ...]

Wall-clock ratios move with the machine (the same code measured 1.30x of bare Flask on one
machine and 1.22x on another of the same kind); an instruction count does not, and it repeats
to within a few thousand. Each variant runs twice under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0``: warm-up (200 requests, so the session is issued, returned and stored),
then ``--few`` requests in one run and ``--many`` in the other. The difference of the two totals
divided by ``many - few`` is one request's instructions, with start-up and warm-up cancelled
out. Needs valgrind (``apt-get install valgrind``); about a minute a variant.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_wsgi  # noqa: E402 - after the path: bench/ is no package

from sessionmw import SessionManager  # noqa: E402
from sessionmw.integrations.flask import SessionMW  # noqa: E402
from sessionmw.integrations.wsgi import SessionMiddleware  # noqa: E402

_COLLECTED = re.compile(r"Collected : (\d+)")


def bare() -> bench_wsgi.Client:
    """The hello-world app alone."""
    return bench_wsgi.Client(bench_wsgi.hello_app().wsgi_app)


def hooks_floor() -> bench_wsgi.Client:
    """Three empty hooks and a cookie shaped like a sessionmw id (see bench_wsgi)."""
    client = bench_wsgi.Client(bench_wsgi.hooks_floor_app())
    client.cookies["sessionmw"] = bench_wsgi.COOKIE_LIKE
    return client


def session_floor() -> bench_wsgi.Client:
    """The least a cookie session tracker must do (see bench_wsgi)."""
    client = bench_wsgi.Client(bench_wsgi.session_floor_app())
    client.cookies["sessionmw"] = bench_wsgi.COOKIE_LIKE
    return client


def sessionmw_memory() -> bench_wsgi.Client:
    """The Flask extension on the memory store."""
    app = bench_wsgi.hello_app()
    SessionMW(app, manager=SessionManager(store="memory://"), secret_key="bench")
    return bench_wsgi.Client(app.wsgi_app)


def middleware_memory() -> bench_wsgi.Client:
    """The WSGI middleware on the memory store."""
    wsgi = SessionMiddleware(
        bench_wsgi.hello_app().wsgi_app, manager=SessionManager(store="memory://"), secret_key="bench"
    )
    return bench_wsgi.Client(wsgi)


#: The variants, by the names bench_wsgi prints; the first is what the ratios are against.
VARIANTS: dict[str, Any] = {
    "bare Flask": bare,
    bench_wsgi.HOOKS_FLOOR: hooks_floor,
    bench_wsgi.SESSION_FLOOR: session_floor,
    "SessionMW, memory store": sessionmw_memory,
    "SessionMiddleware, memory store": middleware_memory,
}


def child(name: str, requests: int) -> None:
    """Under callgrind: warm up the variant, then serve ``requests`` requests."""
    client = VARIANTS[name]()
    for _ in range(200):
        client.request()
    if not client.status.startswith("200"):
        raise SystemExit(f"{name}: warm-up answered {client.status}")
    for _ in range(requests):
        client.request()


def count(name: str, requests: int) -> int:
    """The instructions callgrind counted for one run of ``child(name, requests)``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        name,
        str(requests),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{name}: callgrind failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--few", type=int, default=400, help="requests of the shorter run")
    parser.add_argument("--many", type=int, default=1600, help="requests of the longer run")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these (repeat)")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    if not 0 < args.few < args.many:
        raise SystemExit(f"--few {args.few} must be positive and below --many {args.many}")
    names = args.variant or list(VARIANTS)
    if "bare Flask" not in names:
        names = ["bare Flask", *names]
    per_request: dict[str, float] = {}
    for name in names:
        per_request[name] = (count(name, args.many) - count(name, args.few)) / (args.many - args.few)
    base = per_request["bare Flask"]
    python = sys.version.split()[0]
    print(f"instructions per request: callgrind, {args.many} minus {args.few} requests (Python {python})")
    print(f"| {'variant':<42} | {'instructions':>12} | {'vs bare':>8} |")
    print(f"|{'-' * 44}|{'-' * 13}:|{'-' * 9}:|")
    for name, value in per_request.items():
        print(f"| {name:<42} | {value / 1000:>11.1f}k | {value / base:>7.3f}x |")


if __name__ == "__main__":
    main()
