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
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import LOG_TAIL, DaemonUnavailable, free_port, running

UNPRIVILEGED = "nobody"


class PostgresUnavailable(DaemonUnavailable):
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


@contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[Postgres]:
    """Start a throwaway PostgreSQL server; stop it and remove its files on exit.

    Ready once `pg_isready` says so; its log is `postgres.log` in its folder. Stopped with
    SIGINT (fast shutdown: open sessions are ended)."""
    bin_dir = binaries()
    user = UNPRIVILEGED if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="pdp-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if user is not None:
        record = pwd.getpwnam(user)
        for path in (root, sockets):
            os.chown(path, record.pw_uid, record.pw_gid)
    try:
        init = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D", str(data),
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user=user,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=root,
        )  # fmt: skip
        if init.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed ({init.returncode}): {init.stderr[-LOG_TAIL:]}"
            )
        port = free_port()
        command = [
            str(bin_dir / "postgres"),
            "-D", str(data),
            "-p", str(port),
            "-k", str(sockets),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
        ]  # fmt: skip
        ready = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        with running(
            command,
            log=root / "postgres.log",
            ready=lambda: subprocess.run(ready, capture_output=True).returncode == 0,
            unavailable=PostgresUnavailable,
            timeout=timeout,
            stop=signal.SIGINT,
            stop_timeout=30.0,
            user=user,
            cwd=root,
            interval=0.1,
        ) as process:
            yield Postgres("127.0.0.1", port, process.pid)
    finally:
        shutil.rmtree(root, ignore_errors=True)
