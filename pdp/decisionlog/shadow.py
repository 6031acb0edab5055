"""Shadow evaluation: every decision decided again on a candidate bundle, off the response path.

The edge answers from the live bundle and hands the call's record over; a thread of its own
decides the same requests on the candidate, counts the mismatches, writes the candidate's
answer into the record (the decision log line's `shadow`), and passes the record on to the
decision log. A candidate that is missing, raises or is slow changes no answer and delays
none: its queue is bounded (in records, and in the bytes their requests and decisions hold),
and a record that finds it full goes to the log unshadowed.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pdp import engine
from pdp.decisionlog.entry import Record, record_bytes
from pdp.metrics import Metrics
from pdp.model import AuthzRequest, Decision

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle
    from pdp.live.store import BundleStore

log = logging.getLogger("pdp.shadow")

CAPACITY = 10_000
MAX_BYTES = 64 * 1024 * 1024  # what the queued records may hold in all (`record_bytes`)
Decide = Callable[["CompiledBundle", Sequence[AuthzRequest], "str | None"], list[Decision]]


def _decide(
    bundle: CompiledBundle, requests: Sequence[AuthzRequest], shared: str | None
) -> list[Decision]:
    return engine.decide_batch(bundle, requests, shared)


class Shadow:
    """Decides records again on `store`'s bundle, then hands them to `forward` (the log)."""

    def __init__(
        self,
        store: BundleStore,
        metrics: Metrics,
        capacity: int = CAPACITY,
        decide: Decide = _decide,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._decide = decide
        # (a record, who gets it once shadowed, the bytes it holds)
        self._queue: collections.deque[tuple[Record, Callable[[Record], None] | None, int]] = (
            collections.deque()
        )
        self._held = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pdp-shadow", daemon=True)
        self.skipped = 0  # records that found the queue full

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def submit(self, record: Record, forward: Callable[[Record], None] | None) -> None:
        """Queue `record` (never blocks); `forward` gets it once shadowed (None: not logged)."""
        weight = record_bytes(record)
        with self._lock:
            full = len(self._queue) >= self._capacity or self._held + weight > self._max_bytes
            if not full:
                self._held += weight
                self._queue.append((record, forward, weight))
        if full:
            self.skipped += 1
            if forward is not None:
                forward(record)
            return
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while self._queue:
                record, forward, weight = self._queue.popleft()
                with self._lock:
                    self._held -= weight
                try:
                    self._shadow(record)
                except Exception:  # the candidate's problem, never the live path's
                    log.exception("shadow evaluation failed", extra={"event": "shadow_error"})
                if forward is not None:
                    forward(record)

    def _shadow(self, record: Record) -> None:
        bundle = self._store.current
        if bundle is None or record.plan is not None or not _in_scope(record):
            return
        positions = [i for i, r in enumerate(record.requests) if r is not None]
        if not positions:
            return
        requests = [record.requests[i] for i in positions]
        results: list[dict[str, Any] | None] = [None] * len(record.decisions)
        try:
            decided = self._decide(bundle, requests, record.shared_entities)  # type: ignore[arg-type]
        except Exception as exc:
            for i in positions:
                results[i] = {"error": f"{type(exc).__name__}", "bundle_revision": bundle.revision}
            record.shadow = results
            return
        for i, decision in zip(positions, decided, strict=True):
            live = record.decisions[i]
            results[i] = {
                "decision": decision.word,
                "determining_policies": list(decision.determining_policies),
                "bundle_revision": decision.bundle_revision,
            }
            if decision.allowed != live.allowed:
                self._metrics.shadow_mismatch(record.api, live.word, decision.word)
        record.shadow = results


def _in_scope(record: Record) -> bool:
    """Whether the live bundle's routes.yaml `shadow:` block includes this record's route."""
    if record.gateway is None or record.bundle is None or record.bundle.gateway is None:
        return True
    routes = record.bundle.gateway.shadow_routes
    return routes is None or record.gateway.route in routes
