"""Servers under test as child processes: start, wait until ready, CPU time, always stopped."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_RUNNING: dict[int, subprocess.Popen[bytes]] = {}


class StartError(RuntimeError):
    """A server did not come up in time (its log tail says why)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left after `grace`."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # workers of a stopped parent
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)
    _RUNNING.pop(proc.pid, None)


def stop_all() -> None:
    """Stop every process this run started (on exit, on Ctrl-C, on SIGTERM)."""
    for proc in list(_RUNNING.values()):
        _stop(proc, grace=2.0)


def _on_signal(signum: int, _frame: object) -> None:
    stop_all()
    sys.exit(128 + signum)


def install_cleanup() -> None:
    """Make sure no server outlives the benchmark, however it ends."""
    atexit.register(stop_all)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (workers), from /proc."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in (
            Path(f"/proc/{p}/task").glob("*/children") if Path(f"/proc/{p}").exists() else ()
        ):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return out


class Server:
    """One server process under test, listening on 127.0.0.1:`port`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.started_at = time.monotonic()
        self.ready_seconds = 0.0
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        _RUNNING[self.proc.pid] = self.proc

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        """Server CPU seconds so far (all its processes)."""
        return cpu_seconds(self.proc.pid)

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> float:
        """Poll `probe` until it is true; seconds it took. Raise StartError on exit or timeout."""
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(
                    f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if probe():
                    self.ready_seconds = time.monotonic() - self.started_at
                    return self.ready_seconds
            time.sleep(0.1)
        raise StartError(f"{self.name} not ready within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 6) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:])
        return ""

    def stop(self) -> None:
        _stop(self.proc)


def grpc_health_probe(address: str, service: str = "") -> Callable[[], bool]:
    """A probe that is true when the gRPC health service says SERVING."""

    def probe() -> bool:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
            return reply.status == health_pb2.HealthCheckResponse.SERVING

    return probe


def tcp_probe(port: int) -> Callable[[], bool]:
    """A probe that is true when 127.0.0.1:`port` accepts connections."""

    def probe() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    return probe


@contextlib.contextmanager
def running(server: Server, probe: Callable[[], bool], timeout: float) -> Iterator[Server]:
    """Start-to-stop scope for a server: ready on entry, stopped on exit whatever happens."""
    try:
        server.wait_ready(probe, timeout)
        yield server
    finally:
        server.stop()
