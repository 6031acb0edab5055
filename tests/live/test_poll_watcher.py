"""The poll watcher on a manual clock: a scan every interval, a change reported once two scans
agree, temp files ignored; real files, no sleeping."""

from __future__ import annotations

from pathlib import Path

from pdp.live.watcher import PollWatcher
from tests.support.clock import ManualClock


def step(clock: ManualClock, seconds: float) -> None:
    before = clock.sleeps
    clock.advance(seconds)
    clock.await_sleep(before)


def test_a_change_is_reported_once_two_scans_agree(tmp_path: Path) -> None:
    (tmp_path / "main.cedar").write_text("// v1\n")
    calls: list[str] = []
    clock = ManualClock()
    watcher = PollWatcher(
        tmp_path, calls.append, interval=1.0, settle=0.5, clock=clock, wait=clock.wait_event
    )
    before = clock.sleeps
    watcher.start()
    try:
        clock.await_sleep(before)
        assert calls == ["watch started"]
        (tmp_path / ".#main.cedar").write_text("lock")  # an editor's file: no change
        step(clock, 1.0)
        assert calls == ["watch started"]
        (tmp_path / "main.cedar").write_text("// v2, longer\n")
        step(clock, 1.0)  # the scan sees it and waits `settle` for a second scan
        assert calls == ["watch started"]
        (tmp_path / "main.cedar").write_text("// v3, longer still\n")  # still being written
        step(clock, 0.5)  # the scans disagree: wait again
        assert calls == ["watch started"]
        step(clock, 0.5)  # two scans agree: one report, then the next interval
        assert calls == ["watch started", "poll: bundle files changed"]
        step(clock, 1.0)
        assert calls == ["watch started", "poll: bundle files changed"]
    finally:
        watcher.stop()
