"""Debian daemons for tests (nginx, redis-server, postgres): found, run in the foreground on a
free loopback port, waited for, stopped by pid; every failure says why, with the daemon's log.

`make test` installs the packages when they are missing (`make test-deps`). A missing binary,
a daemon that exits before it answers and one that does not answer in time all raise the
caller's `DaemonUnavailable` subclass with the reason; the tests turn it into a failure that
says so (never a skip: a suite that silently runs nothing would pass).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

LOG_TAIL = 2000  # characters of the daemon's log a failure message carries


class DaemonUnavailable(RuntimeError):
    """A daemon is not installed or did not start; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepting(port: int) -> bool:
    """Does something accept connections on 127.0.0.1:`port`?"""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def find_binary(
    name: str, fallback: str, package: str, unavailable: type[DaemonUnavailable]
) -> str:
    """`name` on PATH, else `fallback` (sbin is not always on PATH); `unavailable` naming
    the Debian package when neither is there."""
    found = shutil.which(name) or (fallback if os.path.exists(fallback) else None)
    if found is None:
        raise unavailable(
            f"{name} is not installed; `make test-deps` (run by `make test`) installs "
            f"Debian's {package} package"
        )
    return found


def log_tail(log: Path) -> str:
    """The end of a daemon's log, for a failure message."""
    try:
        return log.read_text(errors="replace")[-LOG_TAIL:]
    except OSError:
        return "(no log)"


@contextmanager
def running(
    command: Sequence[str],
    *,
    log: Path,
    ready: Callable[[], bool],
    unavailable: type[DaemonUnavailable],
    timeout: float,
    stop: signal.Signals = signal.SIGTERM,
    stop_timeout: float = 10.0,
    user: str | None = None,
    cwd: Path | None = None,
    interval: float = 0.05,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (as `user` when given) until the block ends; yields its process.

    Its stdout and stderr go to `log` (a file: a pipe nobody reads would stall a chatty
    daemon). The block starts once `ready()` is true; the daemon exiting first, or `timeout`
    passing, raises `unavailable` with the log's tail. On the way out the daemon gets `stop`,
    and SIGKILL if it has not exited `stop_timeout` seconds later."""
    name = Path(command[0]).name
    with open(log, "wb") as output:
        if user is not None:
            record = pwd.getpwnam(user)
            os.chown(log, record.pw_uid, record.pw_gid)
        try:
            process = subprocess.Popen(
                list(command), stdout=output, stderr=subprocess.STDOUT, user=user, cwd=cwd
            )
        except OSError as exc:
            raise unavailable(f"cannot run {command[0]}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise unavailable(
                    f"{name} exited {process.returncode} before it answered: {log_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise unavailable(f"{name} did not answer within {timeout}s: {log_tail(log)}")
            time.sleep(interval)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(stop)
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
