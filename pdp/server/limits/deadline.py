"""Deadlines: when a call's evaluation must end, the client's deadline or the server's bound."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pdp.errors import DeadlineExceeded
from pdp.server.limits import Limits


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a call's evaluation must end (on `clock`, `time.monotonic`), and which bound that is."""

    until: float
    bound: str
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def check(self, done: int, total: int) -> None:
        """DeadlineExceeded when the deadline passed with `done` of `total` items decided."""
        if self.clock() > self.until:
            raise DeadlineExceeded(f"{self.bound} passed with {done} of {total} items decided")


def deadline(
    time_remaining: float | None, limits: Limits, clock: Callable[[], float] = time.monotonic
) -> Deadline:
    """The deadline of a call's evaluation: the client's or the server's bound, the earlier.

    `time_remaining` is grpc's `context.time_remaining()` (None: the client set none);
    DeadlineExceeded when it has already passed, so no work starts for an expired call.
    """
    not_expired(time_remaining)
    now = clock()
    seconds = limits.eval_timeout_seconds
    until = Deadline(now + seconds, _bound(seconds), clock)
    if not seconds:
        until = Deadline(math.inf, "", clock)
    if time_remaining is not None and now + time_remaining < until.until:
        until = Deadline(now + time_remaining, "the call's deadline", clock)
    return until


def not_expired(time_remaining: float | None) -> None:
    """DeadlineExceeded when the call's deadline has passed: no work starts for it. All a
    single decision needs (Cedar cannot be stopped halfway; a batch checks between chunks)."""
    if time_remaining is not None and time_remaining <= 0:
        raise DeadlineExceeded("the call's deadline passed before evaluation started")


@functools.lru_cache(maxsize=8)
def _bound(seconds: float) -> str:
    return f"the evaluation limit of {seconds:g} s (--eval-timeout)"
