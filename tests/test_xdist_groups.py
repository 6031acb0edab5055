"""`make test` runs with `--dist loadgroup`: tests marked `xdist_group` run on one worker, so a
module's shared server starts once. pytest-xdist marks them by a suffix on the node id; with
pytest 9.2 that suffix no longer takes (pytest-xdist issue #1386) and every group is ignored
without a word. This fails instead (pyproject.toml bounds pytest until xdist is fixed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from xdist.remote import WorkerInteractor

pytestmark = pytest.mark.xdist_group("xdist-groups")


def test_xdist_gives_a_grouped_test_its_group(request: pytest.FixtureRequest) -> None:
    """xdist's own worker hook, on a fresh item of this test (of the module's group), as
    under `--dist loadgroup`."""
    item = pytest.Function.from_parent(request.node.parent, name=request.node.name)
    loadgroup = SimpleNamespace(getvalue=lambda name: name == "loadgroup")
    WorkerInteractor.pytest_collection_modifyitems(None, loadgroup, [item])  # type: ignore[arg-type]
    name = "::test_xdist_gives_a_grouped_test_its_group@xdist-groups"
    assert item.nodeid.endswith(name), item.nodeid


def test_under_loadgroup_this_test_carries_its_group(request: pytest.FixtureRequest) -> None:
    """On a `make test` worker: the group reached the scheduler (elsewhere: nothing to see)."""
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@xdist-groups"), request.node.nodeid
