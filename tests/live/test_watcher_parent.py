"""The parent directory watch: only what can replace the bundle reaches Python, nothing else.

A log file beside the bundle (`pdp serve policies > pdp.log`) is written on every decision;
those writes must not wake the watcher. Asserted on the watcher's own counters, with a
sentinel event to know the observer has seen everything written before it (inotify keeps
order), never on time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pdp.live.reload import Reloader
from pdp.live.store import BundleStore
from pdp.live.watcher import EventWatcher
from tests.support.kubelet import ConfigMapVolume
from tests.support.polling import wait_for

ALLOW = '@id("main")\npermit(principal == User::"alice", action, resource);\n'
DENY = '@id("main")\nforbid(principal == User::"alice", action, resource);\n'


def write_bundle(root: Path, policy: str, revision: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.cedar").write_text(policy)
    (root / "manifest.yaml").write_text(f"name: test\nrevision: {revision}\n")


@contextmanager
def serving(root: Path) -> Iterator[tuple[EventWatcher, BundleStore]]:
    """A real store, reloader and event watcher on `root`, the first load done."""
    store = BundleStore()
    reloader = Reloader(root, store)
    watcher = EventWatcher(root, reloader.request, debounce=0.1)
    reloader.start()
    watcher.start()
    try:
        wait_for(
            lambda: store.status.activations == 1,
            what="store.status.activations == 1",
            interval=0.01,
        )
        yield watcher, store
    finally:
        watcher.stop()
        reloader.stop()


def append_lines(path: Path, count: int) -> None:
    """Write as the decision log does (O_APPEND, one write per batch), and as a shell
    redirection does (open, write, close)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        for i in range(count):
            os.write(fd, b'{"decision":"allow","n":%d}\n' % i)
    finally:
        os.close(fd)
    for i in range(count // 10):
        with open(path, "a") as log:
            log.write(f"line {i}\n")


def seen_through(watcher: EventWatcher, sentinel: Path) -> int:
    """Create `sentinel` beside the bundle and wait until the parent watch delivered it;
    then every event written before it has been delivered too. The parent events seen."""
    before = watcher.parent_events
    sentinel.write_text("")
    wait_for(
        lambda: watcher.parent_events > before, what="watcher.parent_events > before", interval=0.01
    )
    return watcher.parent_events


def test_writes_to_a_log_beside_the_bundle_never_wake_the_watcher(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    write_bundle(root, ALLOW, "r1")
    log_file = tmp_path / "pdp.log"
    log_file.write_text("")
    with serving(root) as (watcher, store):
        triggers = watcher.triggers
        events = watcher.parent_events
        append_lines(log_file, 500)
        assert seen_through(watcher, tmp_path / "sentinel") == events + 1  # the sentinel only
        assert watcher.triggers == triggers  # and it is not the bundle: no debounce wake-up
        assert store.status.activations == 1
        # replacing the bundle directory beside the log still reloads
        write_bundle(tmp_path / "bundle.new", DENY, "r2")
        os.rename(root, tmp_path / "bundle.old")
        os.rename(tmp_path / "bundle.new", root)
        wait_for(
            lambda: store.current is not None and store.current.revision == "r2",
            what="revision r2",
            interval=0.01,
        )
        assert watcher.triggers > triggers
        # and the new tree is watched: an edit inside it reloads, the log still costs nothing
        triggers = watcher.triggers
        append_lines(log_file, 100)
        events = seen_through(watcher, tmp_path / "sentinel2")
        assert watcher.triggers == triggers
        (root / "manifest.yaml").write_text("name: test\nrevision: r3\n")
        wait_for(
            lambda: store.current is not None and store.current.revision == "r3",
            what="revision r3",
            interval=0.01,
        )
        assert watcher.parent_events == events


def test_a_log_inside_a_configmap_mount_beside_a_projected_bundle(tmp_path: Path) -> None:
    """ConfigMap `items` with `path: bundle/...`: the bundle is `mount/bundle -> ..data/bundle`,
    and an update swaps `..data` in the bundle's parent. That swap reloads; writes to a file
    in the same parent do not wake the watcher."""
    volume = ConfigMapVolume(tmp_path / "mount")
    items = [
        {"key": "main", "path": "bundle/main.cedar"},
        {"key": "m", "path": "bundle/manifest.yaml"},
    ]
    volume.write({"main": ALLOW, "m": "name: test\nrevision: cm1\n"}, items)
    root = volume.root / "bundle"
    assert root.is_symlink()
    log_file = volume.root / "pdp.log"  # not how a kubelet mount looks, but a parent all the same
    log_file.write_text("")
    with serving(root) as (watcher, store):
        assert store.current is not None and store.current.revision == "cm1"
        triggers = watcher.triggers
        events = watcher.parent_events
        append_lines(log_file, 300)
        assert seen_through(watcher, volume.root / "sentinel") == events + 1
        assert watcher.triggers == triggers
        volume.write({"main": DENY, "m": "name: test\nrevision: cm2\n"}, items)
        wait_for(
            lambda: store.current is not None and store.current.revision == "cm2",
            what="revision cm2",
            interval=0.01,
        )
        assert store.current.source.files["main.cedar"] == DENY
        volume.write({"main": ALLOW, "m": "name: test\nrevision: cm3\n"}, items)
        wait_for(
            lambda: store.current is not None and store.current.revision == "cm3",
            what="revision cm3",
            interval=0.01,
        )
