"""A remote bundle: polled with ETags on its own thread, verified, built, then swapped in.

Every fetch ends as one of `updated`, `not_modified`, `failed` (the source could not be
reached or answered an error) or `rejected` (the archive or its bundle is refused). A failed
or rejected fetch keeps the active bundle serving; failures back off exponentially.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence

from pdp.bundle.compiler import CompiledBundle, compile_bundle
from pdp.bundle.loader import BundleSource
from pdp.bundle.package import open_archive, sha256_hex
from pdp.bundle.signing import VerificationKey
from pdp.errors import BundleError, FetchError, Problem
from pdp.live.cache import BundleCache, activate_cached
from pdp.live.fetch import Fetcher
from pdp.live.store import BundleStore

log = logging.getLogger("pdp.reload")

UPDATED = "updated"
NOT_MODIFIED = "not_modified"
FAILED = "failed"
REJECTED = "rejected"
FETCH_RESULTS = (UPDATED, NOT_MODIFIED, FAILED, REJECTED)
POLL_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 300.0
JITTER = 0.2  # each wait is the nominal one times a factor in [0.8, 1.2)

OnFetch = Callable[[str], None]


def next_delay(interval: float, failures: int, draw: float, max_backoff: float) -> float:
    """The wait before the next fetch: `interval`, doubled per consecutive failure up to
    `max_backoff` (never below `interval`), times a jitter factor from `draw` in [0, 1)."""
    nominal = interval
    if failures > 0:
        nominal = min(interval * 2 ** min(failures, 30), max(interval, max_backoff))
    return nominal * (1 - JITTER + 2 * JITTER * draw)


class RemoteBundle:
    """Keeps the store on the newest good archive at a URL (a Lifecycle: start, stop)."""

    def __init__(
        self,
        fetcher: Fetcher,
        keys: Sequence[VerificationKey],
        store: BundleStore,
        cache: BundleCache | None = None,
        interval: float = POLL_SECONDS,
        on_fetch: OnFetch | None = None,
        compiler: Callable[[BundleSource], CompiledBundle] = compile_bundle,
        draw: Callable[[], float] = random.random,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self._fetcher = fetcher
        self._keys = tuple(keys)
        self._store = store
        self._cache = cache
        self._interval = interval
        self._on_fetch = on_fetch or (lambda result: None)
        self._compile = compiler
        self._draw = draw
        self._max_backoff = max_backoff
        self._etag = ""
        self._refused = ""  # why the archive behind `_etag` was refused, if it was
        self._active_sha = ""
        self._failures = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        store.set_source(fetcher.shown)

    @property
    def failures(self) -> int:
        return self._failures

    def load_initial(self) -> bool:
        """Fetch once now; without a good archive, fall back to the cache. True: serving."""
        self.poll_once()
        if self._store.current is not None:
            return True
        return self._cache is not None and self._from_cache(self._cache)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pdp-bundle-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self._fetcher.timeout + 5)

    def request(self, reason: str) -> None:
        """SIGHUP: fetch now, on a short-lived thread (never on the event loop)."""
        threading.Thread(target=self.poll_once, name="pdp-bundle-fetch", daemon=True).start()

    def _run(self) -> None:
        while not self._stopping.wait(self._delay()):
            self.poll_once()

    def _delay(self) -> float:
        return next_delay(self._interval, self._failures, self._draw(), self._max_backoff)

    def poll_once(self) -> str:
        """One fetch, and activation when it brings a new good archive; the result label."""
        with self._lock:
            try:
                result = self._poll()
            except Exception as exc:  # never let the poll thread die; fail closed, report
                log.exception("bundle fetch crashed", extra={"event": "reload_error"})
                self._store.record_fetch(f"internal error: {exc!r}")
                result = FAILED
        self._failures = self._failures + 1 if result == FAILED else 0
        self._on_fetch(result)
        return result

    def _poll(self) -> str:
        shown = self._fetcher.shown
        try:
            fetched = self._fetcher.fetch(self._etag)
        except FetchError as exc:
            self._store.record_fetch(str(exc))
            active = self._store.current
            log.warning(
                "bundle fetch failed; %s",
                f"revision {active.revision} keeps serving" if active else "no bundle is serving",
                extra={"event": "bundle_fetch_failed", "url": shown, "error": str(exc)},
            )
            return FAILED
        if fetched.data is None:  # 304: what we have (or refused) is still what it serves
            self._store.record_fetch(self._refused)
            log.debug("bundle not modified", extra={"event": "bundle_not_modified", "url": shown})
            return NOT_MODIFIED
        self._etag = fetched.etag
        sha = sha256_hex(fetched.data)
        if sha == self._active_sha:
            self._refused = ""
            self._store.record_fetch()
            self._store.clear_from_cache()
            return NOT_MODIFIED
        try:
            opened = open_archive(fetched.data, self._keys, name=_name_of(shown), where=shown)
            bundle = self._compile(opened.source)
        except BundleError as exc:
            return self._reject(exc.problems)
        self._refused = ""
        self._active_sha = sha
        self._store.record_fetch()
        current = self._store.current
        if current is not None and current.source.digest == bundle.source.digest:
            self._store.clear_from_cache()
        else:
            self._store.activate(bundle)
            log.info(
                "bundle activated",
                extra={
                    "event": "reload_activated",
                    "url": shown,
                    "reason": "fetched",
                    "revision": bundle.revision,
                    "previous_revision": current.revision if current else "",
                    "digest": bundle.source.digest,
                    "key_id": opened.key_id,
                    "warnings": [str(w) for w in bundle.warnings],
                },
            )
        if self._cache is not None:
            self._cache.save(fetched.data, bundle.revision)
        return UPDATED

    def _reject(self, problems: list[Problem]) -> str:
        errors = [str(p) for p in problems]
        message = "fetched archive refused: " + "; ".join(errors)
        self._refused = message
        self._store.record_failure("\n".join(errors))
        self._store.record_fetch(message)
        active = self._store.current
        log.error(
            "fetched bundle refused (%d problem%s); %s",
            len(errors),
            "" if len(errors) == 1 else "s",
            f"revision {active.revision} keeps serving" if active else "no bundle is serving",
            extra={
                "event": "reload_failed",
                "url": self._fetcher.shown,
                "errors": errors,
                "active_revision": active.revision if active else "",
            },
        )
        return REJECTED

    def _from_cache(self, cache: BundleCache) -> bool:
        sha = activate_cached(cache, self._keys, self._store, _name_of(self._fetcher.shown))
        if sha is None:
            return False
        self._active_sha = sha
        return True


def _name_of(url: str) -> str:
    """The archive's file name in its URL path: the bundle's name when its manifest has none."""
    path = url.split("?", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or "bundle"
