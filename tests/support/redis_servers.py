"""Redis servers of a test's own (``RedisServer``, ``PrivateRedis``, ``LocalRedisCluster``) on free loopback
ports, started and stopped by pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from support.servers import free_port, wait_for_port


class RedisServer:
    """A redis-server without persistence on a loopback port, started and stopped by its pid."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the server and return once it says it accepts connections."""
        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # blocks until the server logs its readiness
            if "Ready to accept connections" in line:
                return
        raise AssertionError(f"redis-server on port {self.port} exited with {self.process.wait()}")

    def stop(self) -> None:
        """Stop the server (by its pid) and wait for it to exit."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def admin(self) -> redis.Redis:
        """A plain client of this server, for the test's own commands."""
        return redis.Redis.from_url(self.url, socket_timeout=5)


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence; stopped by pid."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil

        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed")
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.process, self.port, 20)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None


class LocalRedisCluster:
    """A Redis Cluster of ``nodes`` primaries on free loopback ports, in ``folder``; stopped by pid.

    The slots are split evenly with ``CLUSTER ADDSLOTSRANGE`` and the nodes joined with
    ``CLUSTER MEET``; :meth:`start` returns once every node reports ``cluster_state:ok``.
    """

    def __init__(self, folder: str, nodes: int = 3) -> None:
        self.folder = folder
        ports: set[int] = set()
        while len(ports) < 2 * nodes:  # free_port may hand out the same port twice in a row
            ports.add(free_port())
        # Each node's client port, and its cluster bus port (Redis 7's cluster-port; by default
        # the bus is the client port + 10000, which may be out of range or taken).
        self.ports = sorted(ports)[:nodes]
        self.bus_ports = sorted(ports)[nodes:]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The URL of the first node (a cluster client finds the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, deadline: float = 20.0) -> None:
        import shutil

        import redis

        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not installed"
        for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
            node_dir = os.path.join(self.folder, str(port))
            os.makedirs(node_dir, exist_ok=True)
            command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
            command += ["no", "--cluster-enabled", "yes", "--cluster-port", str(bus_port), "--dir", node_dir]
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.processes.append(proc)
            wait_for_port(proc, port, deadline)
        clients: list[Any] = [redis.Redis(port=port, socket_timeout=5) for port in self.ports]
        try:
            share = 16384 // len(self.ports)
            for index, client in enumerate(clients):
                last = 16383 if index == len(clients) - 1 else (index + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
            for port, bus_port in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
            end = time.monotonic() + deadline
            while not all(_cluster_ok(client) for client in clients):
                if time.monotonic() > end:
                    raise AssertionError(f"the cluster on {self.ports} did not become ready in {deadline} s")
                with contextlib.suppress(subprocess.TimeoutExpired):  # the pause between polls
                    self.processes[0].wait(timeout=0.05)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        """Stop every node by its pid."""
        for proc in self.processes:
            proc.kill()
        for proc in self.processes:
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.processes = []


def _cluster_ok(client: Any) -> bool:
    """True once ``CLUSTER INFO`` says ``cluster_state:ok`` (redis-py parses it into a dict)."""
    info = client.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return bool(info.get("cluster_state") == "ok")
    return b"cluster_state:ok" in info
