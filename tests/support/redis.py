"""A real Redis for tests: Debian's `redis-server`, a free loopback port, a temporary directory.

`make test` installs Debian's `redis-server` package when it is missing (`make test-deps`) and
stops the service its install may start; the tests run the binary themselves, in the
foreground, without persistence, and stop it by its pid. A missing binary fails the tests
that need it, saying so.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class RedisUnavailable(RuntimeError):
    """redis-server is not installed or did not start; the message says why."""


@dataclass
class Redis:
    """A running redis-server: its URL, and its process (so a test can kill it)."""

    port: int
    process: subprocess.Popen[bytes]
    folder: Path
    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found is None:
        raise RedisUnavailable(
            "redis-server is not installed; `make test-deps` (run by `make test`) installs "
            "Debian's redis-server package"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def redis_server(password: str | None = None, timeout: float = 15.0) -> Iterator[Redis]:
    """Run a throwaway redis-server until the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="pdp-redis-"))
    port = free_port()
    command = [
        binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip
    if password is not None:
        command += ["--requirepass", password]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + timeout
        while not _accepting(port):
            if process.poll() is not None or time.monotonic() > end:
                error = process.stderr.read().decode() if process.poll() is not None else ""
                raise RedisUnavailable(
                    f"redis-server did not start ({process.returncode}): {error}"
                )
            time.sleep(0.05)
        yield Redis(port, process, folder, password)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
