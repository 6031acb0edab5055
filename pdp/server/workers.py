"""`pdp serve --workers N`: a supervisor running N server processes that share one TCP port.

Cedar calls hold the GIL, so one process uses one core. Each worker is a whole `pdp serve`
(its own store, reloader and watcher) bound with SO_REUSEPORT; the kernel spreads
connections across them. The supervisor forwards signals, restarts a worker that dies, and
serves the aggregated metrics (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger("pdp.workers")

RESTART_WINDOW_SECONDS = 30.0
MAX_RESTARTS_IN_WINDOW = 5
Target = Callable[[argparse.Namespace], None]


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, args: argparse.Namespace, target: Target) -> None:
        self._args = args
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._stopping = False
        self._restarts: list[float] = []

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (forwarded to the workers); 0 when all stopped cleanly."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for slot in range(self._args.workers):
                self._start(slot)
            return self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _start(self, slot: int) -> None:
        process = self._context.Process(
            target=self._target, args=(self._args,), name=f"pdp-worker-{slot}", daemon=False
        )
        process.start()
        self._workers[slot] = process
        log.info(
            "worker started", extra={"event": "worker_started", "slot": slot, "pid": process.pid}
        )

    def _watch(self) -> int:
        failed = False
        while self._workers:
            wait([p.sentinel for p in self._workers.values()], timeout=0.5)
            for slot, process in list(self._workers.items()):
                if process.is_alive():
                    continue
                process.join()
                del self._workers[slot]
                _forget_metrics(process.pid)
                code = process.exitcode
                if self._stopping:
                    failed |= code != 0
                    continue
                log.error(
                    "worker exited",
                    extra={
                        "event": "worker_exited",
                        "slot": slot,
                        "pid": process.pid,
                        "exit_code": code,
                    },
                )
                if not self._may_restart():
                    log.error("workers keep exiting; stopping", extra={"event": "crash_loop"})
                    self._stop_all()
                    failed = True
                    continue
                self._start(slot)
        return 1 if failed else 0

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_SECONDS]
        self._restarts.append(now)
        return len(self._restarts) <= MAX_RESTARTS_IN_WINDOW

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)
            return
        if not self._stopping:
            log.info("stopping workers", extra={"event": "stopping_workers"})
        self._stop_all()

    def _stop_all(self) -> None:
        self._stopping = True
        self._send(signal.SIGTERM)

    def _send(self, signum: int) -> None:
        for process in self._workers.values():
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)


def reserve_port(listen: str) -> tuple[str, socket.socket | None]:
    """`listen` with a concrete port; for port 0, a free port held open with SO_REUSEPORT.

    The held socket is bound but never listens, so the kernel hands it no connections; it
    only keeps the port ours while the workers bind it too.
    """
    host, _, port = listen.rpartition(":")
    if port != "0":
        return listen, None
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host.strip("[]"), 0))
    return f"{host}:{holder.getsockname()[1]}", holder


def prepare_metrics_dir() -> str:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run, set before prometheus_client loads."""
    from pdp.metrics import MULTIPROC_ENV

    directory = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="pdp-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    return directory


def _forget_metrics(pid: int | None) -> None:
    from pdp.metrics import multiprocess_mode

    if pid is not None and multiprocess_mode():
        from pdp.metrics import mark_process_dead

        mark_process_dead(pid)
