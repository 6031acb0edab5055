"""The bounded queue between the request path and the sink, and the thread that drains it."""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdp.bundle.manifest import LogRules
from pdp.decisionlog.entry import RECORD_BYTES, Record, line, record_bytes
from pdp.decisionlog.masking import Masker
from pdp.decisionlog.sink import Sink
from pdp.metrics import Metrics

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle

log = logging.getLogger("pdp.decisionlog")

DEFAULT_CAPACITY = 10_000
# What the queued records may hold in all (`record_bytes`): a record keeps its requests and
# decisions, which may be megabytes each (a 4 MiB request; errors quoting the request), and a
# stalled sink (a log shipper that stopped reading) must not let them grow without bound.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ERROR_REPORT_SECONDS = 60.0
FLUSH_INTERVAL_SECONDS = 0.05  # how long an entry may wait in the queue when traffic is light
_STOP = object()


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which decisions are logged: every deny, and this fraction of allows."""

    allow_rate: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Sampling:
        """`all`, `deny-only`, or a rate in [0, 1] for allows; raise ValueError otherwise."""
        if text == "all":
            return cls(1.0)
        if text == "deny-only":
            return cls(0.0)
        try:
            rate = float(text)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"expected all, deny-only or a rate between 0 and 1, got {text!r}")
        return cls(rate)

    def keep(self, allowed: bool) -> bool:
        rate = self.allow_rate
        return not allowed or rate >= 1.0 or (rate > 0.0 and random.random() < rate)


@dataclass(frozen=True, slots=True)
class EventLine:
    """One pre-encoded JSON line that is not a decision (a protection event)."""

    data: bytes
    count: int = 1


class DecisionLog:
    """A bounded queue of records and the writer thread that drains it into a Sink.

    The request path hands over references (the decision, the request, the bundle) in one
    small record; the writer thread builds, masks and encodes the lines. When the sink is
    slow or blocked the queue fills (`capacity` entries, or records holding `max_bytes` of
    requests and decisions in all) and new entries are dropped and counted; a decision
    never waits for the log.
    """

    def __init__(
        self,
        sink: Sink,
        sampling: Sampling | None = None,
        capacity: int = DEFAULT_CAPACITY,
        metrics: Metrics | None = None,
        full_requests: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.sink = sink
        self.full_requests = full_requests  # --decision-log-requests full
        self.sampling = sampling or Sampling()
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._metrics = metrics or Metrics()
        self._queue: collections.deque[Any] = collections.deque()  # (record, its bytes)
        self._pending = 0
        self._pending_bytes = 0
        self._wake_threshold = max(1, capacity // 8)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pdp-decision-log", daemon=True)
        self._masker: tuple[CompiledBundle | None, Masker, LogRules] | None = None
        self._last_error_report = 0.0
        self._errors_since_report = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued within `timeout`; a blocked sink loses the rest (reported)."""
        if not self._thread.is_alive():
            return
        self._queue.append(_STOP)
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "decision log sink is blocked; queued entries were not written",
                extra={"event": "decision_log_unflushed", "entries": self._pending},
            )
        else:
            self.sink.close()

    def submit(self, record: Record | EventLine) -> None:
        """Queue a record, or count its entries as dropped when the queue is full."""
        count = record.count
        if count == 0:
            return
        if type(record) is EventLine:
            weight = RECORD_BYTES + len(record.data)
        else:
            assert isinstance(record, Record)
            weight = record_bytes(record)
        with self._lock:
            full = (
                self._pending + count > self.capacity
                or self._pending_bytes + weight > self.max_bytes
            )
            if not full:
                self._pending += count
                self._pending_bytes += weight
                self._queue.append((record, weight))
        if full:
            self._metrics.log_dropped("queue_full", count)
            return
        # Waking the writer per entry would hand it the GIL on every call; it drains on a
        # short timer instead, or now when the queue fills up.
        if self._pending >= self._wake_threshold:
            self._wake.set()

    def _run(self) -> None:
        try:
            self.sink.open()
        except OSError as exc:
            log.error(
                "cannot open decision log",
                extra={"event": "decision_log_error", "sink": self.sink.name, "error": str(exc)},
            )
        while True:
            self._wake.wait(FLUSH_INTERVAL_SECONDS)
            self._wake.clear()
            if not self._drain():
                return

    def _drain(self) -> bool:
        """Write what is queued, whole lines joined into writes of at most the sink's
        `batch_bytes`; False once the stop marker is reached. A record leaves the queue's
        count once its lines are written (a blocked sink keeps it counted)."""
        batch: list[bytes] = []
        size = 0
        done = held = 0  # entries (and their bytes) of the records whose lines are in `batch`
        limit = self.sink.batch_bytes
        queue = self._queue
        running = True
        while queue:
            item = queue.popleft()
            if item is _STOP:
                running = False
                break
            record, weight = item
            for encoded in self._lines(record):
                if batch and size + len(encoded) > limit:
                    self._flush(batch, done, held)
                    batch, size, done, held = [], 0, 0, 0
                batch.append(encoded)
                size += len(encoded)
            done += record.count
            held += weight
        self._flush(batch, done, held)
        return running

    def _lines(self, record: Record | EventLine) -> list[bytes]:
        if type(record) is EventLine:  # a protection event, encoded already
            return [record.data]
        assert isinstance(record, Record)
        masker, rules = self._masker_for(record.bundle)
        full = self.full_requests
        lines = []
        for index in record.logged:
            try:
                lines.append(line(record, index, masker, rules, full))
            except Exception as exc:  # a bug building one entry: keep the others
                self._metrics.log_dropped("write_error")
                self._report(exc)
        return lines

    def _flush(self, batch: list[bytes], done: int, held: int) -> None:
        """One write of whole lines (when there are any); when it fails, every line of it
        is counted as dropped. Then `done` entries (`held` bytes) leave the queue's count."""
        try:
            if batch:
                self.sink.write(b"".join(batch))
                self._metrics.log_written(len(batch))
        except Exception as exc:
            self._metrics.log_dropped("write_error", len(batch))
            self._report(exc)
        finally:
            if done:
                with self._lock:
                    self._pending -= done
                    self._pending_bytes -= held

    def _masker_for(self, bundle: CompiledBundle | None) -> tuple[Masker, LogRules]:
        cached = self._masker
        if cached is None or cached[0] is not bundle:
            rules = bundle.source.manifest.decision_log if bundle is not None else LogRules()
            cached = (bundle, Masker(rules), rules)
            self._masker = cached
        return cached[1], cached[2]

    def _report(self, exc: BaseException) -> None:
        """Log write errors to the server log, at most once a minute."""
        self._errors_since_report += 1
        now = time.monotonic()
        if now - self._last_error_report < ERROR_REPORT_SECONDS:
            return
        log.error(
            "cannot write decision log",
            extra={
                "event": "decision_log_error",
                "sink": self.sink.name,
                "error": f"{type(exc).__name__}: {exc}",
                "failed_entries": self._errors_since_report,
            },
        )
        self._last_error_report = now
        self._errors_since_report = 0
