"""A real PostgreSQL server for tests: Debian's binaries, a temporary directory, a loopback port.

`make test` installs Debian's `postgresql` package when it is missing (`make test-deps`);
the system's own cluster is never used. initdb refuses to run as root, so as root the
server runs as `nobody`, which then owns the temporary directory. The server is stopped by
its pid.
"""

from __future__ import annotations

import glob
import os
import pwd
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

UNPRIVILEGED = "nobody"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started; the message says why."""


@dataclass(frozen=True)
class Postgres:
    """A running server: where to connect (user `postgres`, database `postgres`, no password)."""

    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"


def binaries() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/postgres); "
            "`make test-deps` installs Debian's postgresql package"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[Postgres]:
    """Start a throwaway PostgreSQL server; stop it and remove its files on exit."""
    bin_dir = binaries()
    user = UNPRIVILEGED if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="pdp-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if user is not None:
        record = pwd.getpwnam(user)
        for path in (root, sockets):
            os.chown(path, record.pw_uid, record.pw_gid)
    process: subprocess.Popen[str] | None = None
    try:
        init = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user=user,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=root,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
        port = _free_port()
        log = root / "postgres.log"
        log_file = open(log, "w")  # noqa: SIM115 - the server writes it until stopped
        if user is not None:
            os.chown(log, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            user=user,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=root,
            text=True,
        )
        log_file.close()
        _wait_ready(bin_dir, port, process, log, timeout)
        yield Postgres("127.0.0.1", port, process.pid)
    finally:
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(
    bin_dir: Path, port: int, process: subprocess.Popen[str], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PostgresUnavailable(f"postgres exited {process.returncode}: {_tail(log)}")
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise PostgresUnavailable(f"postgres not ready after {timeout}s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"
