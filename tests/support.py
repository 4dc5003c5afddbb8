"""Helpers the tests share for servers they start on loopback (imported as ``support``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    """Poll until ``port`` accepts a connection; fail if the process exits or time runs out."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):  # the pause between polls
            proc.wait(timeout=0.05)
        if proc.returncode is not None:
            err = proc.stderr.read().decode() if proc.stderr is not None else ""
            raise AssertionError(f"server exited with {proc.returncode}: {err}")
    raise AssertionError(f"server did not listen on port {port} within {deadline} s")
