"""The policy index's slice cache when requests on several threads share it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pdp.bundle import index, load_bundle
from tests.support.bundles import write_bundle

READ = ("Action", "read")


def test_an_eviction_by_another_thread_never_breaks_a_cache_hit(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The server decides on its event loop and in worker threads at once.

    The cache below lets another request run right after this one found its slice: that
    request evicts the slice (the cache holds one), and this one must still get it.
    """
    monkeypatch.setattr(index, "SLICE_CACHE_SIZE", 1)
    root = write_bundle(tmp_path / "b", {"p.cedar": "permit (principal, action, resource);"})
    policy_index = load_bundle(root).index
    assert policy_index is not None
    caller = threading.current_thread()
    others: list[threading.Thread] = []

    def other_request() -> None:
        policy_index.slices(("User", "u"), READ, ("Other", "x"), frozenset())

    class HandOff(OrderedDict):  # type: ignore[type-arg]
        armed = False

        def _then_let_another_thread_run(self) -> None:
            if self.armed and threading.current_thread() is caller:
                self.armed = False
                other = threading.Thread(target=other_request)
                others.append(other)
                other.start()
                other.join(0.3)  # blocked when the cache is locked: that is the fix

        def __contains__(self, key: object) -> bool:
            found = super().__contains__(key)
            self._then_let_another_thread_run()
            return found

        def get(self, key: Any, default: Any = None) -> Any:
            found = super().get(key, default)
            self._then_let_another_thread_run()
            return found

    cache = HandOff()
    policy_index._cache = cache  # a stand-in that controls when the other thread runs
    first = policy_index.slices(("User", "u"), READ, ("Doc", "d"), frozenset())
    cache.armed = True
    again = policy_index.slices(("User", "u"), READ, ("Doc", "d"), frozenset())
    for other in others:
        other.join()
    assert others and again[0] is first[0]


POLICIES = """\
permit (principal, action == Action::"read", resource is Doc);
permit (principal == User::"alice", action, resource);
forbid (principal, action, resource == Doc::"secret");
"""


def test_arbitrary_actions_and_types_share_one_slice(tmp_path: Path) -> None:
    """Callers choose the uids they send: only what a scope names may grow the cache."""
    bundle = load_bundle(write_bundle(tmp_path / "b", {"p.cedar": POLICIES}))
    policy_index = bundle.index
    assert policy_index is not None
    seen = {
        id(s)
        for n in range(200)
        for s in policy_index.slices(
            (f"Caller{n}", "c"), ("Action", f"action-{n}"), (f"Thing{n}", "t"), frozenset()
        )
    }
    assert len(seen) == 1
    # What a scope names still selects its own slice.
    read_doc = policy_index.slices(("User", "bob"), READ, ("Doc", "d"), frozenset())
    assert {id(s) for s in read_doc}.isdisjoint(seen)


def test_ancestors_of_unknown_uids_are_not_remembered(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "b", {"p.cedar": POLICIES}))
    graph = bundle.graph
    assert graph is not None
    for n in range(100):
        assert graph.ancestors(("Action", f"made-up-{n}")) == frozenset()
    assert len(graph._ancestors) == 0  # a request may name any uid: none is kept
