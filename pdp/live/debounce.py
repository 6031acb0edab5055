"""Debouncing: many triggers in a burst become one call, after a quiet moment."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("pdp.reload")

DEBOUNCE_SECONDS = 0.15
MAX_DELAY_SECONDS = 2.0


class Debouncer:
    """Collects triggers and calls `action` once, after `delay` seconds without a new one.

    A steady stream of triggers still fires at least every `max_delay` seconds.
    """

    def __init__(
        self,
        action: Callable[[list[str]], None],
        delay: float = DEBOUNCE_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        name: str = "pdp-debounce",
        wait: Callable[[threading.Condition, float], object] = threading.Condition.wait,
    ) -> None:
        self._action = action
        self._name = name
        self._delay = delay
        self._max_delay = max(max_delay, delay)
        self._clock = clock
        self._wait = wait  # tests pass a manual clock's wait with its clock: nothing sleeps
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}
        self._first = 0.0
        self._last = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def trigger(self, what: str) -> None:
        """Note one change; cheap, safe from any thread."""
        with self._cond:
            now = self._clock()
            if not self._pending:
                self._first = now
            self._pending[what] = None
            self._last = now
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                while not self._stopping:
                    due = min(self._last + self._delay, self._first + self._max_delay)
                    remaining = due - self._clock()
                    if remaining <= 0:
                        break
                    self._wait(self._cond, remaining)
                if self._stopping:
                    return
                batch = list(self._pending)
                self._pending.clear()
            try:
                self._action(batch)
            except Exception:
                log.exception("watch callback failed", extra={"event": "watch_error"})
