"""A Dash background callback's latency, bare and with ``SessionMWDash`` attached.

Run by hand: ``.venv/bin/python bench/bench_background_jobs.py [--jobs 8] [--work 0.5]
[--redis URL]``. Each variant runs in a process of its own (a fresh Dash app on Dash's
``DiskcacheManager``, driven through the Flask test client, as the browser would drive it): it
posts the callback, which starts the job in a child process, then polls the job every 10 ms
until its result arrives, and times the whole, from the post to the result. The job sleeps
``--work`` seconds and returns. Variants: bare; attached on the memory, SQLite and Redis stores;
attached with ``guard_all=True`` (the job runs under ``guarded_callback`` and counts its success
from the child). Rounds interleave the variants, so a busy machine slows all of them alike.
Prints each variant's median and spread in seconds, and its median less bare's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "bare": {},
    "memory": {"SESSIONMW_STORE_URL": "memory://"},
    "sqlite": {"SESSIONMW_STORE_URL": "sqlite:///{tmp}/sessions.db"},
    "redis": {"SESSIONMW_STORE_URL": "{redis}"},
    "memory, guard_all": {"SESSIONMW_STORE_URL": "memory://", "GUARD_ALL": "1"},
}

_BODY = {
    "output": "out.children",
    "outputs": {"id": "out", "property": "children"},
    "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["go.n_clicks"],
    "state": [],
}


def _run_jobs(attached: bool, guard_all: bool, jobs: int, work: float) -> list[float]:
    """In this process: build the app, run ``jobs`` jobs one after another, return their latencies."""
    import diskcache  # type: ignore[import-untyped]
    from dash import Dash, DiskcacheManager, Input, Output, html

    cache = diskcache.Cache(tempfile.mkdtemp(prefix="bench-bg-"))
    manager = DiskcacheManager(cache)  # type: ignore[no-untyped-call]
    app = Dash(__name__, background_callback_manager=manager)
    app.layout = html.Div([html.Button(id="go"), html.Div(id="out")])

    @app.callback(
        Output("out", "children"), Input("go", "n_clicks"), background=True, prevent_initial_call=True
    )
    def job(clicks: int) -> str:
        time.sleep(work)
        return f"done {clicks}"

    if attached:
        from sessionmw.integrations.dash import SessionMWDash

        SessionMWDash(app, guard_all=guard_all)
    client = app.server.test_client()
    client.get("/")  # the page: the session's cookie
    latencies = []
    for _ in range(jobs + 1):  # the first one warms up (imports in the job's process)
        started = time.perf_counter()
        answer = client.post("/_dash-update-component", json=_BODY).get_json()
        poll = f"/_dash-update-component?cacheKey={answer['cacheKey']}&job={answer['job']}"
        while True:
            response = client.post(poll, json=_BODY)
            if response.status_code == 200 and b'"response"' in response.data:
                break
            if response.status_code not in (200, 204):
                raise SystemExit(f"the poll answered {response.status_code}: {response.data[:200]!r}")
            time.sleep(0.01)
        latencies.append(time.perf_counter() - started)
    cache.close()
    return latencies[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all variants")
    parser.add_argument("--work", type=float, default=0.5, help="seconds each job sleeps")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="the Redis variant's store")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        latencies = _run_jobs(args.child != "bare", os.environ.get("GUARD_ALL") == "1", args.jobs, args.work)
        print(" ".join(f"{value:.4f}" for value in latencies))
        return
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        for round_ in range(args.rounds):
            for name, env in VARIANTS.items():
                extra = {key: value.format(tmp=tmp, redis=args.redis) for key, value in env.items()}
                command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
                           "--jobs", str(args.jobs), "--work", str(args.work)]
                out = subprocess.run(
                    command, env={**os.environ, **extra}, capture_output=True, text=True, check=True
                ).stdout
                results[name] += [float(value) for value in out.split()]
            print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    base = statistics.median(results["bare"])
    print(f"{'variant':<20} {'median s':>9} {'min':>7} {'max':>7} {'- bare':>8}  (job sleeps {args.work} s)")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<20} {median:9.3f} {min(values):7.3f} {max(values):7.3f} {median - base:+8.3f}")


if __name__ == "__main__":
    main()
