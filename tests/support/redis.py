"""A real Redis for tests: Debian's `redis-server`, a free loopback port, a temporary directory.

`make test` installs Debian's `redis-server` package when it is missing (`make test-deps`) and
stops the service its install may start; the tests run the binary themselves, in the
foreground, without persistence, and stop it by its pid. A missing binary fails the tests
that need it, saying so.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import DaemonUnavailable, accepting, find_binary, free_port, running


class RedisUnavailable(DaemonUnavailable):
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
    return find_binary("redis-server", "/usr/bin/redis-server", "redis-server", RedisUnavailable)


@contextmanager
def redis_server(password: str | None = None, timeout: float = 15.0) -> Iterator[Redis]:
    """Run a throwaway redis-server until the block ends (SIGTERM, then its folder goes).

    Ready once its port accepts; its output is `redis.log` in its folder."""
    folder = Path(tempfile.mkdtemp(prefix="pdp-redis-"))
    try:
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
        with running(
            command,
            log=folder / "redis.log",
            ready=lambda: accepting(port),
            unavailable=RedisUnavailable,
            timeout=timeout,
        ) as process:
            yield Redis(port, process, folder, password)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
