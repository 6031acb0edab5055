"""In-process protection state: token buckets, window counters and penalties, all bounded."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from pdp.protection.outcome import Fired, Outcome, Penalty, Refusal
from pdp.protection.plan import Bucket, Count, Step

DEFAULT_MAX_KEYS = 100_000  # buckets and counters each; the least recently used go first
DEFAULT_MAX_PENALTIES = 10_000  # the soonest to expire go first
SAMPLES = 5


@dataclass(slots=True)
class _Counter:
    start: float  # the window this counter counts
    total: int = 0
    denied: int = 0
    members: set[str] = field(default_factory=set)  # at most threshold + 1
    samples: list[str] = field(default_factory=list)
    fired: bool = False


class MemoryState:
    """One process's state; every table is bounded, so a flood of distinct principals, ids or
    addresses costs at most `max_keys` entries per table (evicted least recently used)."""

    name = "memory"

    def __init__(
        self, max_keys: int = DEFAULT_MAX_KEYS, max_penalties: int = DEFAULT_MAX_PENALTIES
    ) -> None:
        self.max_keys = max_keys
        self.max_penalties = max_penalties
        self.buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, at]
        self.counters: OrderedDict[str, _Counter] = OrderedDict()
        self.penalties_by_subject: dict[str, Penalty] = {}

    async def apply(self, step: Step) -> Outcome:
        return self.apply_now(step)

    def apply_now(self, step: Step) -> Outcome:
        """The step, synchronously (it never waits for anything)."""
        refusal = self._admit(step) if step.admission else None
        if refusal is not None and step.enforce:
            return Outcome(refusal, (), self.name)
        fired = tuple(f for c in step.counts if (f := self._count(c, step)) is not None)
        return Outcome(refusal, fired, self.name)

    def _admit(self, step: Step) -> Refusal | None:
        now = step.now
        throttles: list[Bucket] = []
        for key in step.subjects:
            penalty = self.penalties_by_subject.get(key)
            if penalty is None:
                continue
            if penalty.until <= now:
                del self.penalties_by_subject[key]
                continue
            if penalty.action == "block":
                retry = penalty.until - now
                return Refusal("blocked", penalty.detector, penalty.status, retry)
            rate = penalty.limit / penalty.window
            name = f"{penalty.detector}-throttle"
            throttles.append(Bucket(f"x:{key}", name, penalty.limit, rate, penalty.window, None))
        wanted = [*throttles, *step.buckets]
        states = [(bucket, self._tokens(bucket, now)) for bucket in wanted]
        for bucket, tokens in states:
            if tokens < 1.0:
                kind = "throttled" if bucket.key.startswith("x:") else "limited"
                retry = (1.0 - tokens) / bucket.rate
                return Refusal(
                    kind, bucket.name, 429, retry, bucket.capacity, bucket.window, bucket.route
                )
        for bucket, tokens in states:  # all or none: a refused request takes no token
            self._store(bucket.key, [tokens - 1.0, now])
        return None

    def _tokens(self, bucket: Bucket, now: float) -> float:
        """Tokens in `bucket` now: refilled at its current rate, capped at its current size (a
        limit changed by a reload applies from the next request, nothing is lost or gained)."""
        found = self.buckets.get(bucket.key)
        if found is None:
            return float(bucket.capacity)
        tokens, at = found
        return min(float(bucket.capacity), tokens + max(0.0, now - at) * bucket.rate)

    def _store(self, key: str, value: list[float]) -> None:
        buckets = self.buckets
        buckets[key] = value
        buckets.move_to_end(key)
        while len(buckets) > self.max_keys:
            buckets.popitem(last=False)

    def _count(self, count: Count, step: Step) -> Fired | None:
        now = step.now
        start = math.floor(now / count.window) * count.window
        counters = self.counters
        counter = counters.get(count.key)
        if counter is None or counter.start != start:
            counter = _Counter(start)
        counters[count.key] = counter
        counters.move_to_end(count.key)
        while len(counters) > self.max_keys:
            counters.popitem(last=False)
        counter.total += 1
        counter.denied += int(count.denied)
        if count.member is None:
            value = counter.total
        else:
            if len(counter.members) <= count.threshold:  # enough to know it was exceeded
                counter.members.add(count.member)
                if len(counter.samples) < SAMPLES and count.member not in counter.samples:
                    counter.samples.append(count.member)
            value = len(counter.members)
        if counter.fired or value <= count.threshold:
            return None
        if count.fraction and counter.denied < count.fraction * counter.total:
            return None
        counter.fired = True  # once per window and key
        action = count.action.kind if step.enforce else "alert"
        until = None
        if action in ("block", "throttle"):
            until = now + count.action.cooldown
            self.punish(
                Penalty(
                    count.subject,
                    action,
                    count.detector,
                    until,
                    count.action.status,
                    count.action.throttle_limit,
                    count.action.throttle_window,
                )
            )
        return Fired(
            count.detector,
            count.what,
            count.subject,
            action,
            value,
            counter.total,
            counter.denied,
            tuple(counter.samples),
            until,
        )

    def punish(self, penalty: Penalty) -> None:
        """Set a block or throttle (also one another replica set, seen through Redis)."""
        table = self.penalties_by_subject
        old = table.get(penalty.subject)
        if old is not None and old.action == "block" and old.until >= penalty.until:
            return  # a longer block stays
        table[penalty.subject] = penalty
        if len(table) > self.max_penalties:
            soonest = min(table.values(), key=lambda p: p.until)
            del table[soonest.subject]

    async def penalties(self, now: float) -> list[Penalty]:
        return self.active(now)

    def active(self, now: float) -> list[Penalty]:
        return sorted(
            (p for p in self.penalties_by_subject.values() if p.until > now),
            key=lambda p: p.until,
        )

    def describe(self) -> dict[str, object]:
        return {"state": self.name, "buckets": len(self.buckets), "counters": len(self.counters)}

    async def close(self) -> None:
        return None
