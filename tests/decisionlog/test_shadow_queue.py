"""The shadow's queue is bounded by what its records hold, not only by their count: a slow
candidate under load never holds more than its bytes, and what finds it full is logged as is."""

from __future__ import annotations

from pdp.decisionlog import Record
from pdp.decisionlog.shadow import Shadow
from pdp.live.store import BundleStore
from pdp.metrics import Metrics
from tests.support.memory import deep_size, heavy_record


def test_a_slow_candidate_queues_at_most_max_bytes_and_forwards_the_rest_unshadowed() -> None:
    bound = 2 * 1024 * 1024
    shadow = Shadow(BundleStore(), Metrics(), capacity=10_000, max_bytes=bound)  # not started
    forwarded: list[Record] = []
    offered = [heavy_record(n, 100_000, 0) for n in range(40)]
    offered += [heavy_record(n, 0, 100_000) for n in range(40, 80)]
    for record in offered:
        shadow.submit(record, forwarded.append)
    queued = [record for record, _, _ in shadow._queue]
    held = deep_size(queued)
    assert held <= bound, f"{held / 2**20:.1f} MiB held for a {bound / 2**20:g} MiB bound"
    assert 0 < len(queued) < len(offered)
    assert shadow.skipped == len(forwarded) == len(offered) - len(queued)
    assert all(record.shadow is None for record in forwarded)  # logged as is, at once
    assert {id(r) for r in queued} | {id(r) for r in forwarded} == {id(r) for r in offered}
