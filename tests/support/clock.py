"""A clock tests move by hand, for code that takes `clock=` and `wait=`: no test sleeps.

`ManualClock()` is the `clock`; `clock.wait` stands in for `threading.Condition.wait` and
`clock.wait_event` for `threading.Event.wait`. A thread waiting through them blocks until the
test calls `advance()` past its deadline (or its condition is notified, its event set), and
`sleeps` counts the waits begun, so a test can tell that a thread went back to waiting:

    before = clock.sleeps
    clock.advance(0.1)
    clock.await_sleep(before)   # the thread saw the new time and waits again
"""

from __future__ import annotations

import threading


class ManualClock:
    """Seconds that move only when told; waits on it end when it passes their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Condition()
        self._waiting: dict[int, threading.Condition | threading.Event] = {}
        self.sleeps = 0  # waits begun so far
        self._advances = 0
        self._seen: dict[int, int] = {}  # thread -> `_advances` when it last read the time

    def __call__(self) -> float:
        with self._lock:
            self._seen[threading.get_ident()] = self._advances
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the time on and wake every waiter, which then checks its own deadline."""
        with self._lock:
            self._now += seconds
            self._advances += 1
            waiting = list(self._waiting.values())
            self._lock.notify_all()
        for waiter in waiting:
            if isinstance(waiter, threading.Condition):
                with waiter:  # the waiter is inside wait() once we hold its lock
                    waiter.notify_all()

    def wait(self, cond: threading.Condition, timeout: float | None = None) -> bool:
        """`cond.wait(timeout)` on this clock; the caller holds `cond`, as for the real one.
        Returns when notified or when the clock was advanced (the caller re-checks the time,
        as it must after a real wait too), at once if it was advanced since this thread last
        read it: `timeout` was computed from a time that has passed."""
        key = self._begin(cond)
        try:
            with self._lock:
                stale = self._seen.get(threading.get_ident(), self._advances) != self._advances
            if stale or (timeout is not None and timeout <= 0):
                return False
            return cond.wait()
        finally:
            self._end(key)

    def wait_event(self, event: threading.Event, timeout: float) -> bool:
        """`event.wait(timeout)` on this clock: True once set, False once `timeout` passed."""
        key = self._begin(event)
        try:
            with self._lock:
                deadline = self._now + timeout
                # a set() is not announced to this clock: look again now and then
                while not event.is_set() and self._now < deadline:
                    self._lock.wait(0.02)
                return event.is_set()
        finally:
            self._end(key)

    def await_sleep(self, after: int, timeout: float = 5.0) -> None:
        """Block (in real time) until a wait begun after `after` waits is in progress."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.sleeps > after and self._waiting, timeout):
                raise AssertionError(f"no thread waited on the clock within {timeout}s")

    def _begin(self, waiter: threading.Condition | threading.Event) -> int:
        with self._lock:
            self.sleeps += 1
            key = self.sleeps
            self._waiting[key] = waiter
            self._lock.notify_all()
            return key

    def _end(self, key: int) -> None:
        with self._lock:
            self._waiting.pop(key, None)
            self._lock.notify_all()
