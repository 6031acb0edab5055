"""Watches a bundle directory and reports settled changes: inotify via watchdog, or polling."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from pdp.bundle.files import is_ignored, scan_bundle
from pdp.live import Lifecycle
from pdp.live.debounce import DEBOUNCE_SECONDS, MAX_DELAY_SECONDS, Debouncer

log = logging.getLogger("pdp.reload")

OnChange = Callable[[str], None]
WATCH_MODES = ("auto", "poll", "off")
POLL_INTERVAL_SECONDS = 2.0
CONFIGMAP_LINK = "..data"

# Inside the bundle tree: only what can change content; opens and reads (our own included)
# never wake the watcher.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
# In the parent directory: only what can replace the bundle (a name created, deleted or moved).
# watchdog turns this list into the inotify mask, so the kernel never reports a write to a
# file beside the bundle (`pdp serve policies > pdp.log`): no wake-up, no GIL, no cost.
_PARENT_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


def is_trigger(rel: str) -> bool:
    """Whether a change at `rel`, relative to the bundle root, can change the bundle's content.

    Dot entries and editor temp files are not content, with one exception: the kubelet's
    `..data` link in a ConfigMap mount, whose atomic swap changes every visible file at once.
    """
    parts = PurePosixPath(rel).parts
    if rel in ("", "."):
        return True
    if parts[-1] == CONFIGMAP_LINK:
        parts = parts[:-1]
    return not any(is_ignored(part) for part in parts)


def describe(changes: list[str], limit: int = 5) -> str:
    """A short reason for the logs: `3 changes: a.cedar, b.cedar, ..data`."""
    shown = ", ".join(changes[:limit])
    more = f", +{len(changes) - limit} more" if len(changes) > limit else ""
    noun = "change" if len(changes) == 1 else "changes"
    return f"{len(changes)} {noun}: {shown}{more}"


class _Relay(FileSystemEventHandler):
    """Hands every watchdog event to one callable (on the observer's thread)."""

    def __init__(self, callback: Callable[[FileSystemEvent], None]) -> None:
        self._callback = callback

    def dispatch(self, event: FileSystemEvent) -> None:
        self._callback(event)


def _event_paths(event: FileSystemEvent) -> list[str]:
    paths = [os.fsdecode(event.src_path)]
    dest = getattr(event, "dest_path", "")
    if dest:
        paths.append(os.fsdecode(dest))
    return [p for p in paths if p]


def _identity(path: str) -> tuple[str, int, int] | None:
    """What the watch is attached to: the resolved directory and its inode."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    return os.path.realpath(path), info.st_dev, info.st_ino


class EventWatcher:
    """Watches the bundle tree with watchdog (inotify on Linux) and reports settled changes.

    The parent directory is watched too, for names created, deleted or moved only, so a
    bundle that appears later, is replaced, is a symlink swapped by git-sync, or is a
    ConfigMap `items` folder behind the mount's `..data` link gets its tree watch moved to
    the new directory. Other names in the parent (a log file beside the bundle) are dropped
    on the observer's thread before anything else sees them.

    `parent_events` counts the events the parent watch delivered, `triggers` the changes
    handed to the debouncer: what a test (or an operator chasing CPU) can read.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        on_change: OnChange,
        debounce: float = DEBOUNCE_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Condition, float], object] = threading.Condition.wait,
    ) -> None:
        self._root = os.path.abspath(root)
        self._parent = os.path.dirname(self._root)
        # Parent entries that can replace the bundle: its own name, and the `..data` link
        # a ConfigMap mount swaps when the bundle is a projected folder (`bundle -> ..data/bundle`).
        self._parent_names = frozenset({os.path.basename(self._root), CONFIGMAP_LINK})
        self.parent_events = 0
        self.triggers = 0
        self._on_change = on_change
        # The debounce's clock and wait: a manual clock's in tests (tests/support/clock.py).
        self._debouncer = Debouncer(self._settled, debounce, max_delay, clock, wait=wait)
        self._observer = Observer()
        self._lock = threading.Lock()
        self._tree: ObservedWatch | None = None
        self._tree_identity: tuple[str, int, int] | None = None

    def start(self) -> None:
        self._debouncer.start()
        self._observer.start()
        try:
            self._observer.schedule(
                _Relay(self._on_parent_event),
                self._parent,
                recursive=False,
                event_filter=_PARENT_EVENTS,
            )
        except OSError as exc:
            log.warning(
                "cannot watch the bundle's parent directory; a replaced bundle directory "
                "is only seen after SIGHUP",
                extra={"event": "watch_degraded", "path": self._parent, "error": str(exc)},
            )
        try:
            self._sync_tree_watch()
        except OSError as exc:
            self.stop()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(
                exc.errno or errno.EIO, f"cannot watch {self._root}: {reason}; try --watch=poll"
            ) from exc
        log.info("watching", extra={"event": "watching", "path": self._root, "mode": "events"})
        self._on_change("watch started")

    def stop(self) -> None:
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(5)
        self._debouncer.stop()

    def _on_tree_event(self, tree: str, event: FileSystemEvent) -> None:
        for path in _event_paths(event):
            rel = os.path.relpath(path, tree)
            if rel == os.pardir or rel.startswith(os.pardir + os.sep):
                continue  # moved out of the tree: its source path is the one that counts
            if is_trigger(rel):
                self._debouncer.trigger(rel)
                self.triggers += 1  # after: a reader of the count knows the debouncer has it
                return

    def _on_parent_event(self, event: FileSystemEvent) -> None:
        self.parent_events += 1
        for path in _event_paths(event):
            if (
                os.path.dirname(path) == self._parent
                and os.path.basename(path) in self._parent_names
            ):
                self._debouncer.trigger(".")
                self.triggers += 1
                return

    def _settled(self, changes: list[str]) -> None:
        try:
            self._sync_tree_watch()
        except OSError as exc:
            log.error(
                "cannot watch the bundle directory; changes are seen again once it can be",
                extra={"event": "watch_error", "path": self._root, "error": str(exc)},
            )
        self._on_change(describe(changes))

    def _sync_tree_watch(self) -> None:
        """Point the recursive watch at whatever directory the root names now."""
        with self._lock:
            identity = _identity(self._root)
            if identity == self._tree_identity and identity is not None:
                return
            if self._tree is not None:
                self._observer.unschedule(self._tree)
                self._tree = None
            self._tree_identity = None
            if identity is None:
                return
            tree = identity[0]  # the resolved folder: a symlinked root is watched through
            try:
                self._tree = self._observer.schedule(
                    _Relay(partial(self._on_tree_event, tree)),
                    tree,
                    recursive=True,
                    event_filter=_EVENTS,
                )
            except (FileNotFoundError, NotADirectoryError):
                return  # gone again; the parent watch reports when it is back
            self._tree_identity = identity


Fingerprint = tuple[object, ...]


def fingerprint(root: str | os.PathLike[str]) -> Fingerprint:
    """What polling compares: the root's identity, every content file's stat (resolved), and
    every content entry that cannot be read (a link that dangles is a change too)."""
    base = os.fspath(root)
    entries: list[object] = [_identity(base)]
    if entries[0] is None:
        return tuple(entries)
    listing = scan_bundle(base)
    entries.extend((f.path, f.device, f.inode, f.size, f.mtime_ns) for f in listing.files)
    entries.extend((p.file, "error", p.message) for p in listing.problems)
    return tuple(entries)


class PollWatcher:
    """Scans the bundle every `interval` seconds; for file systems without inotify (NFS, EFS).

    A change is reported once two scans `settle` seconds apart agree, so a copy in progress
    is not read half-way.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        on_change: OnChange,
        interval: float = POLL_INTERVAL_SECONDS,
        settle: float = DEBOUNCE_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
    ) -> None:
        self._root = os.path.abspath(root)
        self._on_change = on_change
        self._clock = clock
        self._wait = wait  # `clock.wait_event` of a manual clock in tests; the real one here
        self._interval = interval
        self._settle = settle
        self._max_delay = max_delay
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: Fingerprint = ()

    def start(self) -> None:
        self._last = fingerprint(self._root)
        self._thread = threading.Thread(target=self._run, name="pdp-poll", daemon=True)
        self._thread.start()
        log.info(
            "watching",
            extra={
                "event": "watching",
                "path": self._root,
                "mode": "poll",
                "interval": self._interval,
            },
        )
        self._on_change("watch started")

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._wait(self._stopping, self._interval):
            try:
                current = fingerprint(self._root)
                if current == self._last:
                    continue
                settled = self._settled(current)
                if settled is None:
                    return
                self._last = settled
                self._on_change("poll: bundle files changed")
            except Exception:
                log.exception("poll failed", extra={"event": "watch_error"})

    def _settled(self, current: Fingerprint) -> Fingerprint | None:
        """Rescan until two scans agree (or `max_delay` passes); None when stopping."""
        deadline = self._clock() + self._max_delay
        while self._clock() < deadline:
            if self._wait(self._stopping, self._settle):
                return None
            again = fingerprint(self._root)
            if again == current:
                break
            current = again
        return current


def make_watcher(
    mode: str,
    root: str | os.PathLike[str],
    on_change: OnChange,
    poll_interval: float = POLL_INTERVAL_SECONDS,
    debounce: float = DEBOUNCE_SECONDS,
) -> Lifecycle | None:
    """The watcher for `--watch MODE`: `auto` (inotify), `poll`, or None for `off`."""
    if mode == "auto":
        return EventWatcher(root, on_change, debounce=debounce)
    if mode == "poll":
        return PollWatcher(root, on_change, interval=poll_interval, settle=debounce)
    if mode == "off":
        return None
    raise ValueError(f"unknown watch mode {mode!r}; expected one of {', '.join(WATCH_MODES)}")
