"""The active bundle: one reference swapped atomically, plus the status operators read."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pdp.bundle.compiler import CompiledBundle

Listener = Callable[["BundleStatus"], None]
log = logging.getLogger("pdp.live.store")


@dataclass(frozen=True, slots=True)
class BundleStatus:
    """What operators see: the active revision, when it came, and the last load error."""

    bundle: CompiledBundle | None = None
    activated_at: float | None = None
    activations: int = 0
    load_failures: int = 0
    last_error: str = ""
    last_error_at: float | None = None

    @property
    def serving(self) -> bool:
        return self.bundle is not None


class BundleStore:
    """Holds the current bundle. Reads are one attribute load; writes are serialized."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._status = BundleStatus()
        self._listeners: list[Listener] = []

    @property
    def current(self) -> CompiledBundle | None:
        return self._status.bundle

    @property
    def status(self) -> BundleStatus:
        return self._status

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(status)` now and after every change."""
        with self._lock:
            self._listeners.append(listener)
            status = self._status
        listener(status)

    def activate(self, bundle: CompiledBundle) -> None:
        """Swap in a fully compiled bundle; clears the last error."""
        with self._lock:
            self._status = replace(
                self._status,
                bundle=bundle,
                activated_at=self._clock(),
                activations=self._status.activations + 1,
                last_error="",
                last_error_at=None,
            )
            self._notify()

    def record_failure(self, message: str) -> None:
        """Remember a failed load; the active bundle keeps serving."""
        with self._lock:
            self._status = replace(
                self._status,
                load_failures=self._status.load_failures + 1,
                last_error=message,
                last_error_at=self._clock(),
            )
            self._notify()

    def clear_error(self) -> None:
        """The files load again and equal the active bundle: forget the last load error."""
        with self._lock:
            if not self._status.last_error:
                return
            self._status = replace(self._status, last_error="", last_error_at=None)
            self._notify()

    def _notify(self) -> None:
        # A failing listener must neither undo the swap for its caller nor keep the others
        # (health, metrics) from hearing about it.
        for listener in self._listeners:
            try:
                listener(self._status)
            except Exception:
                log.exception("bundle status listener failed", extra={"event": "listener_error"})
