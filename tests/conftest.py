"""Shared fixtures: the example bundle and a running server over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import CONFORMANCE, EXAMPLE_BUNDLE, TESTS
from tests.support.server import ServerProcess

# Suites that run real processes or real clocks: marked `slow` (`make test-fast` skips them).
SLOW = (
    "e2e/",
    "plan/test_conformance_plans.py",
    "plan/test_generated_plans.py",
    "plan/test_example_plans.py",
    "plan/test_plan_semantics.py",
    "engine/test_slicing_differential.py",
    "test_readme.py",
    "cli/test_example_story.py",
    "client/test_embedded.py",
    "live/test_watcher.py",
    "live/test_watcher_reload.py",
    "live/test_link_reload.py",
    "policytest/test_conformance_suites.py",
    "policytest/test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = Path(str(item.path)).resolve().relative_to(TESTS).as_posix()
        if where.startswith(SLOW) or "subprocess" in item.name:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"conformance cases not found at {CONFORMANCE}")
    return CONFORMANCE


@pytest.fixture
def example_server() -> Iterator[ServerProcess]:
    with ServerProcess(EXAMPLE_BUNDLE) as server:
        yield server
