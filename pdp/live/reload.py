"""Build, then swap: rebuilds the bundle off to the side and activates it with one swap."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pdp.bundle.compiler import CompiledBundle, compile_bundle
from pdp.bundle.files import scan_bundle
from pdp.bundle.loader import BundleSource, read_bundle
from pdp.errors import BundleError, Problem
from pdp.live.debounce import DEBOUNCE_SECONDS, Debouncer
from pdp.live.store import BundleStore
from pdp.live.watcher import fingerprint

log = logging.getLogger("pdp.reload")

ACTIVATED = "activated"
UNCHANGED = "unchanged"
FAILED = "failed"
SUPERSEDED = "superseded"
MAX_SUPERSEDED = 3


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one reload did: `activated`, `unchanged`, `failed` or `superseded`."""

    outcome: str
    revision: str = ""
    errors: tuple[str, ...] = ()


def bundle_present(root: str | os.PathLike[str]) -> bool:
    """Whether `root` is a directory with any content entry, readable or not (else: waiting)."""
    path = os.fspath(root)
    if not os.path.isdir(path):
        return False
    listing = scan_bundle(path)
    return bool(listing.files or listing.problems)


class Reloader:
    """Rebuilds the bundle at `root` on request, one build at a time, on its own thread.

    A build reads and compiles everything before touching the store; a failure is recorded
    and logged with every problem while the active bundle keeps serving. Content identical
    to the active bundle's is not activated again. A build whose files changed while it ran
    is dropped and redone, so a half-copied tree is not activated.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        store: BundleStore,
        read: Callable[[str], BundleSource] = read_bundle,
        compiler: Callable[[BundleSource], CompiledBundle] = compile_bundle,
        settle: float = DEBOUNCE_SECONDS,
    ) -> None:
        self._root = os.path.abspath(root)
        self._store = store
        self._read = read
        self._compile = compiler
        self._settle = settle
        self._build_lock = threading.Lock()
        # Requests queue up and coalesce on one thread: a debouncer that does not wait.
        self._queue = Debouncer(self._build, delay=0.0, max_delay=0.0, name="pdp-reload")
        self._stopping = threading.Event()
        self._superseded_streak = 0

    def start(self) -> None:
        self._queue.start()

    def stop(self) -> None:
        self._stopping.set()
        self._queue.stop(timeout=10)

    def request(self, reason: str) -> None:
        """Ask for a reload on the reload thread; returns at once, requests coalesce."""
        self._queue.trigger(reason)

    def reload(self, reason: str = "requested") -> ReloadResult:
        """Build and, when valid and different, activate the bundle now, on this thread."""
        with self._build_lock:
            return self._reload(reason, may_supersede=False)

    def _build(self, reasons: list[str]) -> None:
        reason = "; ".join(reasons)
        try:
            with self._build_lock:
                result = self._reload(reason, may_supersede=True)
        except Exception:  # never let the reload thread die; the last good bundle serves on
            log.exception("reload crashed", extra={"event": "reload_error", "reason": reason})
            return
        if result.outcome == SUPERSEDED and not self._stopping.wait(self._settle):
            self.request(reason)

    def _reload(self, reason: str, may_supersede: bool) -> ReloadResult:
        started = time.monotonic()
        before = fingerprint(self._root)
        current = self._store.current
        try:
            source = self._read(self._root)
            if current is not None and source.digest == current.source.digest:
                bundle = None
            else:
                bundle = self._compile(source)
        except BundleError as exc:
            problems = exc.problems
        except Exception as exc:  # a bug must not take the server down: fail closed, report
            log.exception("bundle build crashed", extra={"event": "reload_error"})
            problems = [Problem(self._root, f"internal error while loading the bundle: {exc!r}")]
        else:
            problems = []

        retry = may_supersede and self._superseded_streak < MAX_SUPERSEDED
        if retry and fingerprint(self._root) != before:
            self._superseded_streak += 1
            log.info(
                "bundle files changed during the build; building again",
                extra={"event": "reload_superseded", "path": self._root, "reason": reason},
            )
            return ReloadResult(SUPERSEDED)
        self._superseded_streak = 0
        build_ms = round((time.monotonic() - started) * 1000, 1)

        if problems:
            return self._fail(reason, problems, current, build_ms)
        if bundle is None:
            return self._unchanged(reason, current)
        previous = current.revision if current is not None else ""
        self._store.activate(bundle)
        if previous and bundle.revision == previous:
            log.warning(
                "bundle content changed but its manifest revision did not; decisions of the "
                "two versions carry the same revision",
                extra={"event": "revision_reused", "revision": bundle.revision},
            )
        log.info(
            "bundle activated",
            extra={
                "event": "reload_activated",
                "path": self._root,
                "reason": reason,
                "revision": bundle.revision,
                "previous_revision": previous,
                "digest": bundle.source.digest,
                "build_ms": build_ms,
                "warnings": [str(w) for w in bundle.warnings],
            },
        )
        return ReloadResult(ACTIVATED, bundle.revision)

    def _fail(
        self,
        reason: str,
        problems: list[Problem],
        current: CompiledBundle | None,
        build_ms: float,
    ) -> ReloadResult:
        errors = tuple(str(p) for p in problems)
        self._store.record_failure("\n".join(errors))
        active = current.revision if current is not None else ""
        log.error(
            "bundle reload failed (%d problem%s); %s",
            len(errors),
            "" if len(errors) == 1 else "s",
            f"revision {active} keeps serving" if active else "no bundle is serving",
            extra={
                "event": "reload_failed",
                "path": self._root,
                "reason": reason,
                "errors": list(errors),
                "active_revision": active,
                "build_ms": build_ms,
            },
        )
        return ReloadResult(FAILED, active, errors)

    def _unchanged(self, reason: str, current: CompiledBundle | None) -> ReloadResult:
        assert current is not None
        self._store.clear_from_cache()  # the source holds what the cache did
        if self._store.status.last_error:
            self._store.clear_error()
            log.info(
                "bundle loads again, unchanged from the active revision",
                extra={"event": "reload_recovered", "revision": current.revision, "reason": reason},
            )
        else:
            log.debug(
                "bundle unchanged",
                extra={"event": "reload_unchanged", "revision": current.revision, "reason": reason},
            )
        return ReloadResult(UNCHANGED, current.revision)
