"""Decision log lines are written in batches: whole lines, one write per batch, bounded.

Real descriptors (a regular file, a pipe, a file shared by several processes); the sink is
the real one with its writes counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pdp.decisionlog import DecisionLog, Record, Sink
from pdp.decisionlog.sink import FILE_BATCH_BYTES, PIPE_BATCH_BYTES
from pdp.metrics import Metrics
from pdp.model import AuthzRequest, Decision, EntityRef
from tests.support.memory import deep_size, heavy_record
from tests.support.paths import REPO
from tests.support.polling import wait_for


class CountingSink(Sink):
    """The real sink; every `write` call (one `os.write` unless the kernel takes less) kept."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        super().write(data)


class Counted(Metrics):
    def __init__(self) -> None:
        self.written = 0
        self.dropped: dict[str, int] = {}

    def log_written(self, count: int = 1) -> None:
        self.written += count

    def log_dropped(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


def record(n: int, principal: str = "alice") -> Record:
    request = AuthzRequest(
        EntityRef("User", principal), EntityRef("Action", "read"), EntityRef("Doc", str(n))
    )
    decision = Decision(n % 2 == 0, ("p1",), (), (), f"id-{principal}-{n}", "r1")
    return Record("IsAuthorized", time.time(), 0.0001, None, (decision,), (request,))


def assert_whole_lines(writes: list[bytes], limit: int) -> None:
    for data in writes:
        assert data.endswith(b"\n")
        lines = data.splitlines()
        assert len(lines) == 1 or len(data) <= limit  # only a lone line may exceed the bound
        for text in lines:
            json.loads(text)


def test_queued_lines_go_out_in_few_whole_writes_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    sink = CountingSink("file", fd=fd)
    metrics = Counted()
    log = DecisionLog(sink, capacity=5000, metrics=metrics)
    for n in range(3000):  # queued before the writer runs: one drain takes them all
        log.submit(record(n))
    log.start()
    log.stop(timeout=10)
    assert sink.batch_bytes == FILE_BATCH_BYTES
    text = path.read_bytes()
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["decision_id"] for e in entries] == [f"id-alice-{n}" for n in range(3000)]
    assert_whole_lines(sink.writes, FILE_BATCH_BYTES)
    # as few writes as the bound allows: every write but the last is nearly full
    assert len(sink.writes) >= 2
    assert all(len(w) > FILE_BATCH_BYTES - 1024 for w in sink.writes[:-1])
    assert (metrics.written, metrics.dropped) == (3000, {})


def test_batches_to_a_pipe_stay_within_pipe_buf(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    sink = CountingSink("pipe", fd=write_fd, owned=False)
    log = DecisionLog(sink, capacity=1000, metrics=Counted())
    big = record(7)
    big.requests = (
        AuthzRequest(
            EntityRef("User", "x" * 9000), EntityRef("Action", "read"), EntityRef("Doc", "7")
        ),
    )
    for n in range(200):
        log.submit(big if n == 100 else record(n))
    log.start()
    received = bytearray()

    def read_all() -> bool:
        with contextlib.suppress(BlockingIOError):  # nothing to read yet
            received.extend(os.read(read_fd, 1 << 16))
        return received.count(b"\n") >= 200

    wait_for(read_all, what="200 lines through the pipe", interval=0.01)
    log.stop()
    os.close(read_fd)
    os.close(write_fd)
    assert sink.batch_bytes == PIPE_BATCH_BYTES
    assert received.count(b"\n") == 200
    assert_whole_lines(sink.writes, PIPE_BATCH_BYTES)
    assert any(len(w) > PIPE_BATCH_BYTES and w.count(b"\n") == 1 for w in sink.writes)
    assert len(sink.writes) < 200  # batched, not one write per line


def test_a_failed_write_counts_every_line_of_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)  # writes fail with EBADF
    metrics = Counted()
    log = DecisionLog(CountingSink("file", fd=fd), capacity=100, metrics=metrics)
    for n in range(50):
        log.submit(record(n))
    log.start()
    log.stop(timeout=10)
    assert metrics.dropped == {"write_error": 50}
    assert metrics.written == 0
    # the queue's count is given back: the log accepts as many again
    log2 = DecisionLog(CountingSink("file", fd=os.open(path, os.O_RDONLY)), capacity=50)
    for n in range(50):
        log2.submit(record(n))
    assert log2._pending == 50
    log2.start()
    log2.stop(timeout=10)
    assert log2._pending == 0


WRITER = """
import os, sys, time
sys.path.insert(0, {repo!r})
from tests.decisionlog.test_log_batching import record
from pdp.decisionlog import DecisionLog, Sink
fd = os.open({path!r}, os.O_WRONLY | os.O_APPEND)
log = DecisionLog(Sink("file", fd=fd), capacity=100_000)
log.start()
for n in range({count}):
    log.submit(record(n, principal={name!r} + "-" + "p" * (n % 700)))
    if n % 500 == 0:
        time.sleep(0.001)  # the subject: let the other writer processes in between batches
log.stop(timeout=30)
"""


def test_several_processes_appending_to_one_file_keep_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "shared.log"
    path.write_text("")
    count, names = 4000, ["w0", "w1", "w2", "w3"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER.format(repo=str(REPO), path=str(path), count=count, name=name),
            ],
            cwd=REPO,
        )
        for name in names
    ]
    for proc in procs:
        assert proc.wait(120) == 0
    entries = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert len(entries) == count * len(names)
    for name in names:
        mine = [e["decision_id"] for e in entries if e["decision_id"].startswith(f"id-{name}-")]
        assert len(mine) == count
        expected = [f"id-{name}-{'p' * (n % 700)}-{n}" for n in range(count)]
        assert mine == expected  # each process's lines whole and in its own order


def test_a_stalled_sink_queues_at_most_max_bytes_of_requests_and_decisions(
    tmp_path: Path,
) -> None:
    """The writer is not running (a log shipper that stopped reading): records holding 12 MB
    are offered to a queue of 10,000 entries and 2 MiB; what it holds stays in the bytes."""
    bound = 2 * 1024 * 1024
    path = tmp_path / "decisions.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    metrics = Counted()
    log = DecisionLog(Sink("file", fd=fd), capacity=10_000, metrics=metrics, max_bytes=bound)
    offered = [heavy_record(n, 100_000, 0) for n in range(60)] + [
        heavy_record(n, 0, 100_000) for n in range(60, 120)
    ]
    for item in offered:
        log.submit(item)
    held = deep_size([record for record, _ in log._queue])
    assert held <= bound, f"{held / 2**20:.1f} MiB held for a {bound / 2**20:g} MiB bound"
    accepted = len(log._queue)
    assert 0 < accepted < len(offered)
    assert metrics.dropped == {"queue_full": len(offered) - accepted}
    log.submit(record(1))  # a small entry still fits beside them
    log.start()
    log.stop(timeout=10)
    assert metrics.written == accepted + 1
    assert (log._pending, log._pending_bytes) == (0, 0)  # drained: every byte given back
    ids = [json.loads(line)["decision_id"] for line in path.read_text().splitlines()]
    assert ids[-1] == "id-alice-1" and len(ids) == accepted + 1
