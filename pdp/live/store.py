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
    source: str = ""  # the bundle directory, or the URL (redacted) it is fetched from
    from_cache: bool = False  # the active bundle came from --bundle-cache, not the source
    last_fetch_at: float | None = None  # remote sources: the last fetch attempt
    last_fetch_error: str = ""  # why the last fetch failed; empty when it worked

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

    def set_source(self, source: str) -> None:
        """Say where bundles come from (shown by GetStatus)."""
        with self._lock:
            self._status = replace(self._status, source=source)

    def activate(self, bundle: CompiledBundle, from_cache: bool = False) -> None:
        """Swap in a fully compiled bundle; clears the last error."""
        with self._lock:
            self._status = replace(
                self._status,
                bundle=bundle,
                from_cache=from_cache,
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

    def record_fetch(self, error: str = "") -> None:
        """Remember a fetch attempt of a remote source and why it failed (empty: it worked)."""
        with self._lock:
            self._status = replace(
                self._status, last_fetch_at=self._clock(), last_fetch_error=error
            )
            self._notify()

    def clear_from_cache(self) -> None:
        """The source now holds what the cache held: the active bundle is the source's."""
        with self._lock:
            if self._status.from_cache:
                self._status = replace(self._status, from_cache=False)
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
