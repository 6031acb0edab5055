"""The active bundle and its status: one swap, and every listener told about it."""

from __future__ import annotations

from pathlib import Path

from pdp.bundle import load_bundle
from pdp.live.store import BundleStatus, BundleStore
from tests.support.bundles import write_bundle


def test_a_failing_listener_neither_fails_the_swap_nor_silences_the_others(
    tmp_path: Path,
) -> None:
    bundle = load_bundle(
        write_bundle(tmp_path / "b", {"p.cedar": "permit (principal, action, resource);"})
    )
    store = BundleStore(clock=lambda: 1.0)
    heard: list[BundleStatus] = []

    def broken(status: BundleStatus) -> None:
        if status.serving:
            raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(heard.append)
    store.activate(bundle)  # must not raise
    store.record_failure("p.cedar:1: invalid policy")

    assert store.current is bundle
    assert [(s.serving, s.activations, s.load_failures) for s in heard] == [
        (False, 0, 0),
        (True, 1, 0),
        (True, 1, 1),
    ]
    assert heard[-1].last_error == "p.cedar:1: invalid policy"
