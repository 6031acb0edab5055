"""The bundle watcher on real files with the real watchdog observer, and the polling fallback.

Real inotify events throughout; the debounce runs on a manual clock (`watched`), so a test
moves time on once the watcher has the event it waits for, and a change that must not be
reported is one that would be named in the report of a later real change. One test keeps the
real clock: a burst of writes really coalesced by a real debounce."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pdp.live.debounce import Debouncer
from pdp.live.watcher import EventWatcher, PollWatcher, fingerprint, is_trigger
from tests.support.clock import ManualClock
from tests.support.kubelet import ConfigMapMount
from tests.support.polling import wait_for

DEBOUNCE = 0.2
QUIET = 0.6  # for the real-clock test: longer than its debounce, so a late report has come
STARTED = "watch started"
NOTHING_MORE = 0.2  # real seconds in which an event a write would cause has surely arrived


class Recorder:
    """Collects the watcher's reports; `wait_for(n)` blocks until n change reports arrived."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, reason: str) -> None:
        with self._cond:
            self.calls.append(reason)
            self._cond.notify_all()

    @property
    def changes(self) -> list[str]:
        return [c for c in self.calls if c != STARTED]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.changes) >= count, timeout)

    def settled_count(self, quiet: float = QUIET) -> int:
        """The number of change reports once none arrived for `quiet` seconds."""
        while True:
            before = len(self.changes)
            time.sleep(quiet)  # the subject: no report comes in a quiet period (real clock)
            if len(self.changes) == before:
                return before


@contextmanager
def running(watcher: EventWatcher | PollWatcher) -> Iterator[None]:
    watcher.start()
    try:
        yield
    finally:
        watcher.stop()


class Watched:
    """An EventWatcher (real inotify) whose debounce runs on a manual clock."""

    def __init__(self, root: Path) -> None:
        self.recorder = Recorder()
        self.clock = ManualClock()
        self.watcher = EventWatcher(
            root, self.recorder, debounce=DEBOUNCE, clock=self.clock, wait=self.clock.wait
        )
        self._seen = 0  # triggers already moved past

    @property
    def changes(self) -> list[str]:
        return self.recorder.changes

    def report(self, timeout: float = 10.0) -> str:
        """Wait for the watcher to take a new trigger, move past the debounce, and return the
        one report that makes."""
        deadline = time.monotonic() + timeout
        wait_for(
            lambda: self.watcher.triggers != self._seen,
            timeout,
            "the watcher to see a change",
            interval=0.005,
        )
        self._seen = self.watcher.triggers
        count = len(self.changes)
        # Another event of the same change may come just after the step and restart the
        # quiet period, as it would on the real clock: then step again.
        self.clock.advance(DEBOUNCE)
        while not self.recorder.wait_for(count + 1, 0.05):
            assert time.monotonic() < deadline, "no report after the debounce"
            self.clock.advance(DEBOUNCE)
        return self.changes[count]

    def report_naming(self, name: str, reports: int = 5) -> str:
        """The first report naming `name` (events of earlier changes may come first)."""
        for _ in range(reports):
            report = self.report()
            if name in report:
                return report
        raise AssertionError(f"no report named {name}: {self.changes}")

    def assert_no_trigger(self) -> None:
        """No event arrives that the watcher would report (for changes in another tree)."""
        time.sleep(NOTHING_MORE)  # the subject: an absence, which no event announces
        assert self.watcher.triggers == self._seen


@contextmanager
def watched(root: Path) -> Iterator[Watched]:
    state = Watched(root)
    with running(state.watcher):
        yield state


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (".", True),
        ("main.cedar", True),
        ("orders/read.cedar", True),
        ("manifest.yaml", True),
        (".#main.cedar", False),
        ("main.cedar~", False),
        (".main.cedar.swp", False),
        ("main.cedar.tmp", False),
        ("4913", False),
        ("#main.cedar#", False),
        (".git/HEAD", False),
        ("orders/.hidden.cedar", False),
        ("..data", True),
        ("shared/..data", True),
        (".cache/..data", False),
        ("..data_tmp", False),
        ("..2026_11_30_12_00_00.1/main.cedar", False),
    ],
)
def test_is_trigger(rel: str, expected: bool) -> None:
    assert is_trigger(rel) is expected


def test_a_burst_of_writes_is_reported_once(tmp_path: Path) -> None:
    recorder = Recorder()
    # a longer cool-down than the default, so a stalled test process cannot split the burst
    with running(EventWatcher(tmp_path, recorder, debounce=0.5)):
        assert recorder.calls == [STARTED]
        for i in range(30):
            (tmp_path / f"p{i % 5}.cedar").write_text(f"// {i}\n")
        (tmp_path / "orders").mkdir()
        (tmp_path / "orders" / "read.cedar").write_text("// read\n")
        assert recorder.wait_for(1)
        assert recorder.settled_count() == 1
    assert "p0.cedar" in recorder.changes[0]


def test_temp_files_and_dot_entries_are_not_reported(tmp_path: Path) -> None:
    (tmp_path / "main.cedar").write_text("// v1\n")
    with watched(tmp_path) as w:
        (tmp_path / ".#main.cedar").write_text("lock")
        (tmp_path / "main.cedar~").write_text("backup")
        (tmp_path / ".main.cedar.swp").write_text("swap")
        (tmp_path / "4913").write_text("")
        (tmp_path / "4913").unlink()
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        (tmp_path / ".hidden.cedar").write_text("permit(")
        (tmp_path / "main.cedar").read_text()  # reading content is not a change either
        # A real edit, saved the editor way: its report names every change the watcher took
        # since it started; the events above came first on the same watch.
        (tmp_path / ".main.cedar.tmp").write_text("// v2\n")
        os.replace(tmp_path / ".main.cedar.tmp", tmp_path / "main.cedar")
        assert w.report() == "1 change: main.cedar"
        assert w.watcher.triggers == 1


def test_configmap_update_is_reported_on_the_data_link_swap(tmp_path: Path) -> None:
    mount = ConfigMapMount(tmp_path / "bundle")
    mount.write({"main.cedar": "// v1\n", "manifest.yaml": "revision: v1\n"})
    with watched(mount.root) as w:
        files = {"main.cedar": "// v2\n", "manifest.yaml": "revision: v2\n"}
        mount.stage(files)  # a new hidden folder and the `..data_tmp` link: not content yet
        mount.swap(files)
        assert w.report() == "1 change: ..data"  # the staging events came first: not named
        # a second update is seen too (the watch survives the old folder's removal)
        mount.write({"main.cedar": "// v3\n", "manifest.yaml": "revision: v3\n"})
        assert "..data" in w.report()
    assert (mount.root / "main.cedar").read_text() == "// v3\n"


def test_a_bundle_directory_that_appears_later_is_watched(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    with watched(root) as w:
        root.mkdir()
        (root / "main.cedar").write_text("// v1\n")
        assert w.report() == "1 change: ."  # the parent watch saw the folder appear
        (root / "main.cedar").write_text("// v2\n")  # the tree watch is attached now
        assert w.report() == "1 change: main.cedar"
        shutil.rmtree(root)
        w.report_naming(".")
        root.mkdir()
        (root / "main.cedar").write_text("// v3\n")
        w.report_naming(".")
        (root / "main.cedar").write_text("// v4\n")  # attached to the new folder
        w.report_naming("main.cedar")


def test_a_swapped_root_symlink_moves_the_watch(tmp_path: Path) -> None:
    """git-sync's layout: the bundle path is a link that is atomically pointed elsewhere."""
    for name in ("rev1", "rev2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.cedar").write_text(f"// {name}\n")
    root = tmp_path / "current"
    os.symlink("rev1", root)
    with watched(root) as w:
        os.symlink("rev2", tmp_path / "current.tmp")
        os.replace(tmp_path / "current.tmp", root)
        assert w.report() == "1 change: ."
        (tmp_path / "rev1" / "main.cedar").write_text("// old tree, no longer the bundle\n")
        w.assert_no_trigger()
        (tmp_path / "rev2" / "main.cedar").write_text("// edited\n")
        assert w.report() == "1 change: main.cedar"
    assert w.changes == ["1 change: .", "1 change: main.cedar"]


def test_poll_watcher_reports_content_changes_only(tmp_path: Path) -> None:
    """On a manual clock: each step is one scan (the thread is waiting again when it returns),
    so "nothing reported" is known, not waited for."""
    mount = ConfigMapMount(tmp_path / "bundle")
    mount.write({"main.cedar": "// v1\n"})
    plain = mount.root / "orders"
    plain.mkdir()
    (plain / "read.cedar").write_text("// r1\n")
    recorder = Recorder()
    clock = ManualClock()
    watcher = PollWatcher(
        mount.root, recorder, interval=0.25, settle=0.125, clock=clock, wait=clock.wait_event
    )

    def step(seconds: float) -> None:
        before = clock.sleeps
        clock.advance(seconds)
        clock.await_sleep(before)

    before = clock.sleeps
    with running(watcher):
        clock.await_sleep(before)
        assert recorder.calls == [STARTED]
        (mount.root / ".#main.cedar").write_text("lock")
        (plain / "read.cedar~").write_text("backup")
        step(0.25)  # two scans that see nothing new
        step(0.25)
        assert recorder.changes == []
        (plain / "read.cedar").write_text("// r2, longer\n")
        step(0.25)  # seen; a second scan after `settle` must agree
        assert recorder.changes == []
        step(0.125)
        assert len(recorder.changes) == 1
        mount.write({"main.cedar": "// v2\n"})
        step(0.25)
        step(0.125)
        assert len(recorder.changes) == 2
        step(0.25)
        step(0.25)
        assert len(recorder.changes) == 2


def test_fingerprint_follows_links_and_skips_hidden_entries(tmp_path: Path) -> None:
    mount = ConfigMapMount(tmp_path)
    mount.write({"main.cedar": "// v1\n"})
    first = fingerprint(tmp_path)
    (tmp_path / ".#main.cedar").write_text("lock")
    assert fingerprint(tmp_path) == first
    mount.write({"main.cedar": "// v2\n"})
    assert fingerprint(tmp_path) != first
    assert fingerprint(tmp_path / "missing") == (None,)


def test_debouncer_fires_once_per_quiet_period_and_within_max_delay() -> None:
    """The Debouncer on the real clock and Condition.wait (tests/live/test_debounce.py steps
    the same logic on a manual clock): short delays, so a second fire or a starved stream
    shows within a fraction of a second."""
    batches: list[list[str]] = []
    fired = threading.Event()

    def action(batch: list[str]) -> None:
        batches.append(batch)
        fired.set()

    debouncer = Debouncer(action, delay=0.05, max_delay=0.15)
    debouncer.start()
    try:
        for name in ("a", "b", "a"):
            debouncer.trigger(name)
        assert fired.wait(5)
        time.sleep(0.15)  # the subject: no second fire within the quiet period
        assert batches == [["a", "b"]]
        # a steady stream (a trigger every 10 ms for 0.4 s) still fires, at most every 0.15 s
        fired.clear()
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            debouncer.trigger("c")
            time.sleep(0.01)  # the subject: a stream of triggers in real time
        assert fired.is_set()
        assert len(batches) >= 2
    finally:
        debouncer.stop()
