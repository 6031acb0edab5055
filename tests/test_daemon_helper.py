"""tests/support/daemon.py, which starts nginx, redis-server and postgres for the tests: what
a missing binary, a crash at start, a slow start and a stubborn daemon each give."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

from tests.support.daemon import DaemonUnavailable, accepting, find_binary, free_port, running
from tests.support.polling import wait_for


class ToyUnavailable(DaemonUnavailable):
    """The caller's own subclass, as NginxUnavailable, RedisUnavailable."""


# A shell's background job (`make test &`) starts with SIGINT ignored, and Python keeps an
# inherited SIG_IGN: the toy sets Python's handler itself, as every real daemon sets its own.
LISTEN = (
    "import signal, socket, sys, time\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('listening', flush=True); time.sleep(60)\n"
)


def toy(
    tmp_path: Path, code: str, *args: str, ready: Callable[[], bool], **options: Any
) -> AbstractContextManager[Popen[bytes]]:
    """`python -c code args` run as a daemon, its log in `tmp_path/log`."""
    options.setdefault("timeout", 60.0)
    command = [sys.executable, "-c", code, *args]
    return running(
        command, log=tmp_path / "log", ready=ready, unavailable=ToyUnavailable, **options
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_missing_binary_names_the_package_to_install() -> None:
    with pytest.raises(ToyUnavailable, match=r"toyd is not installed.*Debian's toy-server"):
        find_binary("toyd", "/nonexistent/toyd", "toy-server", ToyUnavailable)


def test_the_fallback_path_is_used_when_the_binary_is_not_on_path() -> None:
    assert find_binary("no-such-toyd", sys.executable, "toy", ToyUnavailable) == sys.executable


def test_a_binary_that_cannot_run_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    script = tmp_path / "toyd"
    script.write_text("#!/bin/sh\n")  # not executable
    with (
        pytest.raises(ToyUnavailable, match=r"cannot run .*toyd"),
        running(
            [str(script)], log=tmp_path / "log", ready=lambda: True,
            unavailable=ToyUnavailable, timeout=5,
        ),
    ):  # fmt: skip
        pass


def test_a_crash_at_start_gives_its_exit_status_and_its_log(tmp_path: Path) -> None:
    crash = "import sys; print('emerg: bad directive', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ToyUnavailable) as info, toy(tmp_path, crash, ready=lambda: False):
        pass
    assert "exited 3 before it answered" in str(info.value)
    assert "emerg: bad directive" in str(info.value)


def test_a_daemon_that_never_answers_is_unavailable_and_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    slow = (
        "import os, pathlib, sys, time\n"
        "print('still starting', flush=True)\n"
        "pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(60)\n"
    )

    def started_not_ready() -> bool:
        wait_for(pid_file.exists, 30, "the toy daemon's pid file")
        return False

    with (
        pytest.raises(ToyUnavailable) as info,
        toy(tmp_path, slow, str(pid_file), ready=started_not_ready, timeout=0.2),
    ):
        pass
    assert "did not answer within 0.2s" in str(info.value)
    assert "still starting" in str(info.value)
    assert gone(int(pid_file.read_text()))


def test_ready_yields_the_process_then_stops_it_with_its_signal(tmp_path: Path) -> None:
    port = free_port()
    with toy(
        tmp_path, LISTEN, str(port), ready=lambda: accepting(port), stop=signal.SIGINT
    ) as process:
        assert process.poll() is None and accepting(port)
    assert process.returncode != 0 and gone(process.pid)
    assert "KeyboardInterrupt" in (tmp_path / "log").read_text()  # SIGINT, not SIGTERM


def test_a_daemon_ignoring_its_stop_signal_is_killed(tmp_path: Path) -> None:
    port = free_port()
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + LISTEN
    ready = lambda: accepting(port)  # noqa: E731
    with toy(tmp_path, stubborn, str(port), ready=ready, stop_timeout=0.2) as process:
        pass
    assert process.returncode == -signal.SIGKILL
