"""The last good bundle on disk: the archive of every activation, to start on when needed.

One archive file per source (named by a hash of the source, so a cache folder shared by two
sources, or a source that changed, never serves the wrong one), replaced with one rename.
What it holds is never trusted more than the source: it is verified again when read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence

from pdp.bundle.archive import read_archive_file, write_file_atomically
from pdp.bundle.compiler import compile_bundle
from pdp.bundle.package import open_archive, pack, sha256_hex
from pdp.bundle.signing import VerificationKey
from pdp.errors import ArchiveError, BundleError
from pdp.live.store import BundleStatus, BundleStore

log = logging.getLogger("pdp.cache")


class BundleCache:
    """The folder of `--bundle-cache DIR`: created (0700) on first save."""

    def __init__(self, folder: str, source: str) -> None:
        self.folder = os.path.abspath(folder)
        self.source = source
        key = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
        self.path = os.path.join(self.folder, f"last-good-{key}.tar.gz")
        self._about = os.path.join(self.folder, f"last-good-{key}.json")

    def save(self, archive: bytes, revision: str) -> bool:
        """Store `archive` as the last good one; False (logged) when it cannot be written."""
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            write_file_atomically(self.path, archive, mode=0o600)
            about = {"source": self.source, "revision": revision, "saved_at": time.time()}
            write_file_atomically(self._about, json.dumps(about).encode() + b"\n", mode=0o600)
        except OSError as exc:
            log.error(
                "cannot write the bundle cache; the bundle serves, but a restart cannot fall "
                "back to it",
                extra={"event": "cache_write_failed", "path": self.path, "error": str(exc)},
            )
            return False
        log.info(
            "bundle cached",
            extra={"event": "cache_written", "path": self.path, "revision": revision},
        )
        return True

    def load(self) -> bytes | None:
        """The cached archive, or None (logged when present but unreadable)."""
        if not os.path.exists(self.path):
            return None
        try:
            return read_archive_file(self.path)
        except ArchiveError as exc:
            log.error(
                "cannot read the bundle cache",
                extra={"event": "cache_unreadable", "path": self.path, "error": str(exc)},
            )
            return None


def activate_cached(
    cache: BundleCache,
    keys: Sequence[VerificationKey] | None,
    store: BundleStore,
    name: str = "bundle",
) -> str | None:
    """Verify (signature when `keys` is not None), build and activate the cached archive,
    marked `from_cache`; the archive's SHA-256, or None (logged) when there is none or it
    is refused too."""
    data = cache.load()
    if data is None:
        return None
    try:
        opened = open_archive(data, keys, name=name, where=cache.path)
        bundle = compile_bundle(opened.source)
    except BundleError as exc:
        log.error(
            "the cached bundle is refused too",
            extra={
                "event": "cache_refused",
                "path": cache.path,
                "errors": [str(p) for p in exc.problems],
            },
        )
        return None
    store.activate(bundle, from_cache=True)
    log.warning(
        "serving the cached bundle (revision %s) until the source has a good one",
        bundle.revision,
        extra={"event": "bundle_from_cache", "path": cache.path, "revision": bundle.revision},
    )
    return sha256_hex(data)


class CacheWriter:
    """A store listener for a directory source: archives every newly activated bundle."""

    def __init__(self, cache: BundleCache) -> None:
        self._cache = cache
        self._digest = ""

    def __call__(self, status: BundleStatus) -> None:
        bundle = status.bundle
        if bundle is None or status.from_cache or bundle.source.digest == self._digest:
            return
        if self._cache.save(pack(bundle.source), bundle.revision):
            self._digest = bundle.source.digest
