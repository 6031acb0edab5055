"""Build, then swap: the reloader over real bundle files, a real store, and the real watcher."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pdp.bundle.loader import BundleSource, read_bundle
from pdp.live.reload import (
    ACTIVATED,
    FAILED,
    UNCHANGED,
    Reloader,
    bundle_present,
)
from pdp.live.store import BundleStore
from pdp.live.watcher import EventWatcher
from tests.support.clock import ManualClock
from tests.support.kubelet import ConfigMapMount
from tests.support.polling import wait_for

ALLOW = '@id("main")\npermit(principal == User::"alice", action, resource);\n'
DENY = '@id("main")\nforbid(principal == User::"alice", action, resource);\n'


class Records(logging.Handler):
    """The `pdp.reload` log records of one test."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "event", None) == name]


@pytest.fixture
def reload_log() -> Iterator[Records]:
    logger = logging.getLogger("pdp.reload")
    handler = Records()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def write_bundle(root: Path, policy: str = ALLOW, revision: str | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.cedar").write_text(policy)
    if revision is not None:
        (root / "manifest.yaml").write_text(f"name: test\nrevision: {revision}\n")


def test_valid_change_activates_and_invalid_change_keeps_the_last_good(
    tmp_path: Path, reload_log: Records
) -> None:
    write_bundle(tmp_path, ALLOW, "r1")
    store = BundleStore()
    reloader = Reloader(tmp_path, store)

    assert reloader.reload("start").outcome == ACTIVATED
    assert reloader.reload("again").outcome == UNCHANGED
    assert store.current is not None and store.current.revision == "r1"
    assert store.status.activations == 1  # the second reload found nothing new

    write_bundle(tmp_path, DENY, "r2")
    assert reloader.reload().outcome == ACTIVATED
    first_good = store.current
    assert first_good is not None and first_good.revision == "r2"
    activated_at = store.status.activated_at

    # two problems in two files: both are reported, and r2 keeps serving
    (tmp_path / "main.cedar").write_text("permit(principal, action")
    (tmp_path / "extra.cedar").write_text('@id("x")\nforbid(principal, action, resource) when {')
    result = reloader.reload("edit")
    assert result.outcome == FAILED
    assert result.revision == "r2"
    assert len(result.errors) == 2
    status = store.status
    assert status.bundle is first_good
    assert status.activated_at == activated_at
    assert status.load_failures == 1
    assert "main.cedar" in status.last_error and "extra.cedar" in status.last_error
    assert status.last_error_at is not None
    [failed] = reload_log.events("reload_failed")
    assert failed.levelno == logging.ERROR
    assert failed.errors == list(result.errors)
    assert failed.active_revision == "r2"
    assert "r2 keeps serving" in failed.getMessage()

    (tmp_path / "extra.cedar").unlink()
    write_bundle(tmp_path, ALLOW, "r4")
    assert reloader.reload().outcome == ACTIVATED
    status = store.status
    assert status.bundle is not None and status.bundle.revision == "r4"
    assert (status.last_error, status.last_error_at) == ("", None)
    assert (status.activations, status.load_failures) == (3, 1)
    activated = reload_log.events("reload_activated")
    assert [r.revision for r in activated] == ["r1", "r2", "r4"]
    assert activated[-1].previous_revision == "r2"


def test_returning_to_the_active_content_clears_the_error_without_reactivating(
    tmp_path: Path, reload_log: Records
) -> None:
    write_bundle(tmp_path, ALLOW)
    store = BundleStore()
    reloader = Reloader(tmp_path, store)
    assert reloader.reload().outcome == ACTIVATED
    active = store.current
    (tmp_path / "main.cedar").write_text("permit(")
    assert reloader.reload().outcome == FAILED
    write_bundle(tmp_path, ALLOW)  # reverted: the same content as the active bundle
    result = reloader.reload()
    assert result.outcome == UNCHANGED
    assert store.current is active
    assert store.status.activations == 1
    assert store.status.last_error == ""
    assert reload_log.events("reload_recovered")


def test_a_reused_manifest_revision_with_new_content_is_activated_with_a_warning(
    tmp_path: Path, reload_log: Records
) -> None:
    write_bundle(tmp_path, ALLOW, "v1")
    store = BundleStore()
    reloader = Reloader(tmp_path, store)
    reloader.reload()
    write_bundle(tmp_path, DENY, "v1")
    assert reloader.reload().outcome == ACTIVATED
    assert store.status.activations == 2
    assert reload_log.events("revision_reused")


def test_a_missing_bundle_is_a_failure_until_it_appears(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    store = BundleStore()
    reloader = Reloader(root, store)
    assert not bundle_present(root)
    assert reloader.reload().outcome == FAILED
    assert "does not exist" in store.status.last_error
    root.mkdir()
    (root / ".#main.cedar").write_text("lock")
    assert not bundle_present(root)
    assert reloader.reload().outcome == FAILED
    assert "empty" in store.status.last_error
    write_bundle(root)
    assert bundle_present(root)
    assert reloader.reload().outcome == ACTIVATED
    assert store.status.serving and store.status.last_error == ""


def test_a_build_whose_files_change_meanwhile_is_dropped_and_redone(
    tmp_path: Path, reload_log: Records
) -> None:
    write_bundle(tmp_path, ALLOW, "r1")
    store = BundleStore()
    edits = iter([("main.cedar", DENY), ("manifest.yaml", "name: test\nrevision: r2\n")])

    def read_while_someone_writes(root: str) -> BundleSource:
        source = read_bundle(root)
        edit = next(edits, None)
        if edit is not None:  # a two-file change lands while the first file is being read
            (tmp_path / edit[0]).write_text(edit[1])
        return source

    reloader = Reloader(tmp_path, store, read=read_while_someone_writes, settle=0.05)
    reloader.start()
    try:
        reloader.request("test")
        wait_for(lambda: store.current is not None, what="store.current is not None", interval=0.02)
    finally:
        reloader.stop()
    assert store.current is not None and store.current.revision == "r2"
    assert store.current.source.files["main.cedar"] == DENY
    assert store.status.activations == 1
    assert len(reload_log.events("reload_superseded")) == 2


def step_until(
    clock: ManualClock, seconds: float, predicate: Callable[[], bool], timeout: float = 10.0
) -> None:
    """Move the debounce clock on by `seconds` until `predicate` holds (events of a change may
    come after a step and restart the quiet period, as they would on the real clock)."""
    deadline = time.monotonic() + timeout
    while True:
        clock.advance(seconds)
        try:
            wait_for(predicate, 0.05, interval=0.01)
            return
        except AssertionError:  # not within this step: step again, until the deadline
            assert time.monotonic() < deadline, "nothing happened after the debounce"


def test_watcher_and_reloader_turn_a_burst_into_one_activation(
    tmp_path: Path, reload_log: Records
) -> None:
    """Real inotify events and the real reload thread; the watcher's debounce on a manual clock
    (a real debounce coalescing a burst: tests/live/test_watcher.py)."""
    write_bundle(tmp_path, ALLOW, "r0")
    store = BundleStore()
    reloader = Reloader(tmp_path, store)
    clock = ManualClock()
    watcher = EventWatcher(tmp_path, reloader.request, debounce=0.5, clock=clock, wait=clock.wait)
    reloader.start()
    watcher.start()
    try:
        wait_for(
            lambda: store.status.activations == 1,
            what="store.status.activations == 1",
            interval=0.02,
        )
        # an editor saving a file and a tool rewriting the manifest, as one burst
        for i in range(10):
            (tmp_path / ".main.cedar.swp").write_text(f"swap {i}")
            (tmp_path / "main.cedar~").write_text(ALLOW)
            (tmp_path / ".main.cedar.tmp").write_text(DENY if i % 2 else ALLOW)
            os.replace(tmp_path / ".main.cedar.tmp", tmp_path / "main.cedar")
            (tmp_path / "manifest.yaml").write_text(f"name: test\nrevision: r{i + 1}\n")
        wait_for(lambda: watcher.triggers > 0, what="watcher.triggers > 0", interval=0.02)
        step_until(clock, 0.5, lambda: store.status.activations >= 2)
        assert store.status.activations == 2
        assert store.current is not None and store.current.revision == "r10"
        assert store.status.load_failures == 0
        # temp files alone: nothing to do at all. A real change after them (on the same watch,
        # so its event comes after theirs) is reloaded, and no reload names a temp file.
        mark = len(reload_log.records)
        noise = {".#main.cedar", "main.cedar~", "4913", ".main.cedar.swp"}
        for name in noise:
            (tmp_path / name).write_text("noise")
        (tmp_path / "manifest.yaml").write_text("name: test\nrevision: r11\n")
        step_until(clock, 0.5, lambda: store.status.activations >= 3)
        assert (store.status.activations, store.status.load_failures) == (3, 0)
        reasons = [getattr(r, "reason", "") for r in reload_log.records[mark:]]
        named = {n for reason in reasons for n in reason.partition(": ")[2].split(", ")}
        assert "manifest.yaml" in named and not named & noise, reasons
    finally:
        watcher.stop()
        reloader.stop()


def test_configmap_updates_reload_through_the_data_link(tmp_path: Path) -> None:
    mount = ConfigMapMount(tmp_path / "bundle")
    mount.write({"main.cedar": ALLOW, "manifest.yaml": "revision: cm1\n"})
    store = BundleStore()
    reloader = Reloader(mount.root, store)
    clock = ManualClock()
    watcher = EventWatcher(mount.root, reloader.request, debounce=0.2, clock=clock, wait=clock.wait)
    reloader.start()
    watcher.start()
    try:
        wait_for(lambda: store.current is not None, what="store.current is not None", interval=0.02)
        assert store.current.revision == "cm1"
        assert sorted(store.current.source.files) == ["main.cedar", "manifest.yaml"]
        mount.write({"main.cedar": "permit(", "manifest.yaml": "revision: cm2\n"})
        step_until(clock, 0.2, lambda: store.status.load_failures == 1)
        assert store.current.revision == "cm1"
        mount.write({"main.cedar": DENY, "manifest.yaml": "revision: cm3\n"})
        step_until(clock, 0.2, lambda: store.current.revision == "cm3")
        assert store.status.last_error == ""
        assert store.current.source.files["main.cedar"] == DENY
    finally:
        watcher.stop()
        reloader.stop()
