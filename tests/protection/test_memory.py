"""The in-process state: bucket arithmetic, windows, reload semantics, bounded memory."""

from __future__ import annotations

import asyncio

from pdp.bundle.protection import Action
from pdp.protection.memory import MemoryState
from pdp.protection.outcome import Penalty
from pdp.protection.plan import BOLA, Bucket, Count, Step, subject
from tests.support.protection import START


def bucket(key: str = "l:k", capacity: int = 5, rate: float = 5 / 60) -> Bucket:
    return Bucket(key, "per-user", capacity, rate, 60.0, "read-order")


def step(now: float, *buckets: Bucket, counts: tuple[Count, ...] = (), enforce: bool = True):
    return Step(now, ('p:User::"42"',), buckets, counts, enforce, True)


def bola(member: str, denied: bool, key: str = "c:bola", threshold: int = 20) -> Count:
    action = Action("block", cooldown=600)
    return Count(BOLA, key, 300.0, threshold, member, denied, 0.5, 'p:User::"42"', action, "ids")


def test_a_bucket_refills_at_limit_per_window_and_never_above_its_size() -> None:
    state = MemoryState()
    outcomes = [state.apply_now(step(START, bucket())).refusal for _ in range(6)]
    assert outcomes[:5] == [None] * 5
    refusal = outcomes[5]
    assert refusal is not None and refusal.kind == "limited"
    assert abs(refusal.retry_after - 12.0) < 1e-9
    assert state.apply_now(step(START + 11.9, bucket())).refusal is not None
    assert state.apply_now(step(START + 12.0, bucket())).refusal is None
    # An hour idle refills to the size, not to 300 tokens.
    later = START + 3600
    assert [state.apply_now(step(later, bucket())).refusal is None for _ in range(6)] == [
        *[True] * 5,
        False,
    ]


def test_a_refused_request_takes_no_token_from_any_bucket() -> None:
    state = MemoryState()
    small, big = bucket("l:small", 1), bucket("l:big", 10)
    assert state.apply_now(step(START, small, big)).refusal is None
    for _ in range(5):
        assert state.apply_now(step(START, small, big)).refusal is not None
    assert state.buckets["l:big"][0] == 9.0  # only the admitted request took one


def test_a_reload_that_changes_a_limit_applies_from_the_next_request() -> None:
    state = MemoryState()
    for _ in range(5):
        state.apply_now(step(START, bucket(capacity=5)))
    # Raised to 10 per minute: the bucket keeps its (empty) level and refills at the new rate.
    raised = bucket(capacity=10, rate=10 / 60)
    refusal = state.apply_now(step(START, raised)).refusal
    assert refusal is not None and abs(refusal.retry_after - 6.0) < 1e-9
    # Lowered to 2: a full bucket is capped at the new size at once.
    fresh = MemoryState()
    assert [fresh.apply_now(step(START, bucket(capacity=2))).refusal is None for _ in range(3)] == [
        True,
        True,
        False,
    ]


def test_bola_fires_once_per_window_and_again_in_the_next() -> None:
    state = MemoryState()
    fired = []
    for n in range(50):
        outcome = state.apply_now(step(START + n, counts=(bola(f"o-{n}", n % 5 != 0),)))
        fired.extend(outcome.fired)
    assert len(fired) == 1  # blocked after, but counts only run when admitted
    assert fired[0].count == 21 and fired[0].until == START + 20 + 600
    assert state.active(START + 21)[0].subject == 'p:User::"42"'
    assert state.active(START + 621) == []


def test_bola_needs_the_denied_fraction() -> None:
    state = MemoryState()
    fired = []
    for n in range(50):
        fired += state.apply_now(step(START, counts=(bola(f"o-{n}", n % 3 == 0),))).fired
    assert fired == []  # a third denied: below 0.5


def test_memory_stays_bounded_under_a_flood_of_distinct_principals_and_ids() -> None:
    state = MemoryState(max_keys=1000, max_penalties=50)
    for n in range(20_000):
        principal = f'User::"attacker-{n}"'
        counts = (bola(f"id-{n}-{i}", True, key=f"c:{n % 3000}", threshold=10) for i in range(3))
        state.apply_now(
            Step(
                START,
                (subject("p", principal),),
                (bucket(f"l:{principal}"),),
                tuple(counts),
                True,
                True,
            )
        )
    assert len(state.buckets) <= 1000
    assert len(state.counters) <= 1000
    assert all(len(c.members) <= 11 for c in state.counters.values())  # threshold + 1
    for n in range(200):
        state.punish(Penalty(f"p:{n}", "block", BOLA, START + 1000 + n))
    assert len(state.penalties_by_subject) <= 50
    # The soonest to end were evicted; the longest blocks stay.
    assert "p:199" in state.penalties_by_subject and "p:0" not in state.penalties_by_subject


def test_a_longer_block_is_not_shortened() -> None:
    state = MemoryState()
    state.punish(Penalty("p:x", "block", BOLA, START + 600))
    state.punish(Penalty("p:x", "block", BOLA, START + 60))
    state.punish(Penalty("p:x", "throttle", BOLA, START + 60))
    assert asyncio.run(state.penalties(START))[0].until == START + 600
