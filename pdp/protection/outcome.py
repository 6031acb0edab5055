"""What the protection state answers for one step: refused or not, and the detectors fired."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pdp.protection.plan import Step


@dataclass(frozen=True, slots=True)
class Penalty:
    """An active block or throttle on a subject (`p:`, `a:` or `t:` key), until a time."""

    subject: str
    action: str  # block or throttle
    detector: str
    until: float
    status: int = 429
    limit: int = 1  # a throttle's limit per window
    window: float = 60.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: a block, a throttle or a limit, and when to retry."""

    kind: str  # blocked, throttled, limited
    name: str  # the limit's name, or the detector's
    status: int
    retry_after: float  # seconds
    limit: int = 0  # for RateLimit-Policy: quota and window (0: none, a block)
    window: float = 0.0
    route: str | None = None


@dataclass(frozen=True, slots=True)
class Fired:
    """A detector that crossed its threshold (once per window and key)."""

    detector: str
    what: str  # what was counted: unauthenticated, forbidden, ids, addresses
    subject: str
    action: str  # alert, throttle or block (alert in observe mode)
    count: int  # requests, or distinct members, in the window
    total: int  # requests in the window
    denied: int  # denied requests in the window
    samples: tuple[str, ...]  # a few of the distinct members (ids, addresses)
    until: float | None  # a block's or throttle's end


@dataclass(frozen=True, slots=True)
class Outcome:
    refusal: Refusal | None  # set (also in observe mode, where it is not enforced)
    fired: tuple[Fired, ...] = ()
    state: str = "memory"  # which state answered: memory, redis, memory_fallback


class State(Protocol):
    """Where buckets, counters and penalties live: in this process, or in Redis."""

    name: str

    async def apply(self, step: Step) -> Outcome: ...

    async def penalties(self, now: float) -> list[Penalty]: ...

    def describe(self) -> dict[str, object]: ...

    async def close(self) -> None: ...
