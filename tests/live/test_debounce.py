"""The debouncer's timing on a manual clock: a burst is one call after a quiet moment, a steady
stream still fires within max_delay; nothing sleeps (times are binary fractions: sums exact)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pdp.live.debounce import Debouncer
from tests.support.clock import ManualClock


class Calls:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fired = threading.Event()

    def __call__(self, batch: list[str]) -> None:
        self.batches.append(batch)
        self.fired.set()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def debouncer(clock: ManualClock, calls: Calls) -> Iterator[Debouncer]:
    debouncer = Debouncer(calls, delay=0.25, max_delay=1.0, clock=clock, wait=clock.wait)
    debouncer.start()
    yield debouncer
    debouncer.stop()


def step(clock: ManualClock, seconds: float) -> None:
    """Advance and let the debouncer thread look at the new time (it waits again or fires)."""
    before = clock.sleeps
    clock.advance(seconds)
    clock.await_sleep(before)


def test_a_burst_is_one_call_after_the_quiet_delay(
    clock: ManualClock, calls: Calls, debouncer: Debouncer
) -> None:
    before = clock.sleeps
    for name in ("a", "b", "a"):
        debouncer.trigger(name)
    clock.await_sleep(before)
    step(clock, 0.125)
    assert calls.batches == []  # 0.125 s quiet: not yet
    clock.advance(0.125)
    assert calls.fired.wait(5)
    assert calls.batches == [["a", "b"]]  # once, deduplicated, in order


def test_each_trigger_restarts_the_quiet_delay(
    clock: ManualClock, calls: Calls, debouncer: Debouncer
) -> None:
    before = clock.sleeps
    debouncer.trigger("a")
    clock.await_sleep(before)
    step(clock, 0.125)
    before = clock.sleeps
    debouncer.trigger("b")  # wakes the thread: due again 0.25 s from now
    clock.await_sleep(before)
    step(clock, 0.1875)  # 0.3125 s after "a", 0.1875 s after "b"
    assert calls.batches == []
    clock.advance(0.0625)
    assert calls.fired.wait(5)
    assert calls.batches == [["a", "b"]]


def test_a_steady_stream_still_fires_within_max_delay(
    clock: ManualClock, calls: Calls, debouncer: Debouncer
) -> None:
    before = clock.sleeps
    debouncer.trigger("c")
    clock.await_sleep(before)
    for _ in range(7):  # a trigger every 125 ms: never 0.25 s quiet
        step(clock, 0.125)
        before = clock.sleeps
        debouncer.trigger("c")
        clock.await_sleep(before)
    assert calls.batches == []  # 0.875 s in
    clock.advance(0.125)  # max_delay after the first trigger of the batch
    assert calls.fired.wait(5)
    assert calls.batches == [["c"]]
