"""A decision log sink nobody reads: decisions keep flowing, in bounded time, and drops count.

A stop with the sink still blocked waits out the decision log's flush timeout (2 s, not a
flag): one test does that, on stdout; the FIFO tests let a reader drain the sink before the
stop and check what reaches it instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.v1 import authorizer_pb2 as pb
from tests.support.observability import (
    TIMEOUT,
    make_bundle,
    metrics_address,
    parse_lines,
    request,
    scrape,
    value,
)
from tests.support.polling import wait_for
from tests.support.server import ServerProcess, authorizer_stub

BUFFER = 100
BATCHES = 30
ITEMS = 100
SINGLES = 50
# A Linux pipe holds 64 KiB: a few hundred lines. The rest must be dropped, not waited for.
CALL_BUDGET_SECONDS = 2.0
TOTAL_BUDGET_SECONDS = 60.0


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle", decision_log={"context": True})


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def idle_reader(fifo: Path) -> Iterator[int]:
    """A reader that opens the FIFO and never reads from it."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    yield fd
    os.close(fd)


class StdoutNeverRead(ServerProcess):
    """A server whose stdout is a pipe the test never drains."""

    def _drain(self, stream, sink: list[str]) -> None:
        if sink is not self.stdout_lines:
            super()._drain(stream, sink)


class FifoReader:
    """Reads a FIFO to its end in a thread (opening it first when `fd` is None, which
    blocks until the server's writer opens its end too)."""

    def __init__(self, fifo: Path, fd: int | None = None) -> None:
        self._fifo = fifo
        self._fd = fd
        self.data = bytearray()
        self.reads = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = os.open(self._fifo, os.O_RDONLY) if self._fd is None else self._fd
        os.set_blocking(fd, True)
        try:
            while chunk := os.read(fd, 65536):
                self.data += chunk
                self.reads += 1
        finally:
            if self._fd is None:
                os.close(fd)

    def lines(self, timeout: float = 20.0) -> list[str]:
        """Every line read, once the writer closed its end."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the decision log FIFO was never closed"
        return self.data.decode().splitlines(keepends=True)


def flood(server: ServerProcess) -> None:
    """Batches and single calls, each answered within its budget, the lot within the total."""
    context = {"amount": 1, "note": "n" * 300}
    batch = pb.BatchIsAuthorizedRequest(requests=[request(context=context)] * ITEMS)
    started = time.monotonic()
    with authorizer_stub(server.address) as stub:
        for _ in range(BATCHES):
            call = time.monotonic()
            response = stub.BatchIsAuthorized(batch, timeout=TIMEOUT)
            assert len(response.results) == ITEMS
            assert time.monotonic() - call < CALL_BUDGET_SECONDS
        for _ in range(SINGLES):
            call = time.monotonic()
            response = stub.IsAuthorized(request("User::bob"), timeout=TIMEOUT)
            assert response.decision == pb.DECISION_DENY
            assert time.monotonic() - call < CALL_BUDGET_SECONDS
    assert time.monotonic() - started < TOTAL_BUDGET_SECONDS


def assert_dropped_and_counted(server: ServerProcess) -> None:
    samples = scrape(metrics_address(server))
    decided = value(samples, "pdp_decisions_total", api="BatchIsAuthorized", decision="allow")
    assert decided == BATCHES * ITEMS
    assert value(samples, "pdp_decisions_total", api="IsAuthorized", decision="deny") == SINGLES
    dropped = value(samples, "pdp_decision_log_dropped_total", reason="queue_full")
    written = value(samples, "pdp_decision_log_written_total")
    assert dropped > BATCHES * ITEMS / 2
    assert written < 2000  # what a 64 KiB pipe can take, at most
    assert dropped + written + BUFFER >= BATCHES * ITEMS + SINGLES


def stop_in_bounded_time(server: ServerProcess) -> None:
    started = time.monotonic()
    assert server.stop(timeout=20) == 0
    assert time.monotonic() - started < 15
    assert '"decision_log_unflushed"' in server.stderr  # the loss is reported, not hidden


def stop_flushed(server: ServerProcess, reader: FifoReader) -> list[dict]:
    """Stop once the reader is draining the sink: the queue is written, nothing is lost."""
    wait_for(lambda: reader.reads, what="the reader draining the decision log FIFO")
    assert server.stop(timeout=20) == 0
    assert '"decision_log_unflushed"' not in server.stderr
    return parse_lines(reader.lines())


def test_full_fifo_never_slows_decisions(bundle: Path, fifo: Path, idle_reader: int) -> None:
    args = ("--decision-log", str(fifo), "--decision-log-buffer", str(BUFFER))
    server = ServerProcess(bundle, *args, "--metrics", "127.0.0.1:0").start()
    try:
        flood(server)
        assert_dropped_and_counted(server)
        written = value(scrape(metrics_address(server)), "pdp_decision_log_written_total")
        entries = stop_flushed(server, FifoReader(fifo, idle_reader))
    finally:
        server.stop()
    # whole lines only (each write within PIPE_BUF), at most the queue's worth after the scrape
    assert written <= len(entries) <= written + BUFFER
    assert {entry["decision"] for entry in entries} <= {"allow", "deny"}


def test_fifo_without_a_reader_neither_blocks_start_nor_decisions(bundle: Path, fifo: Path) -> None:
    args = ("--decision-log", str(fifo), "--decision-log-buffer", str(BUFFER))
    server = ServerProcess(bundle, *args, "--metrics", "127.0.0.1:0").start()
    try:
        flood(server)
        samples = scrape(metrics_address(server))
        assert value(samples, "pdp_decision_log_written_total") == 0
        dropped = value(samples, "pdp_decision_log_dropped_total", reason="queue_full")
        assert dropped == BATCHES * ITEMS + SINGLES - BUFFER
        # a reader at last: the writer, still waiting to open the FIFO, writes the queue
        entries = stop_flushed(server, FifoReader(fifo))
    finally:
        server.stop()
    assert len(entries) == BUFFER  # the first batch, queued whole; everything after dropped
    assert {entry["decision"] for entry in entries} == {"allow"}


def test_stdout_pipe_nobody_reads_never_slows_decisions(bundle: Path) -> None:
    args = ("--decision-log-buffer", str(BUFFER), "--metrics", "127.0.0.1:0")
    server = StdoutNeverRead(bundle, *args).start()
    try:
        flood(server)
        assert_dropped_and_counted(server)
    finally:
        stop_in_bounded_time(server)
