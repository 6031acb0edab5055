"""Shared fixtures: the conformance cases and a running server over the example bundle."""

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


@pytest.fixture(scope="session")
def http_server() -> Iterator[ServerProcess]:
    """One real `pdp serve --http-listen` over the example bundle, shared by a worker's tests
    that only call it (gRPC on `address`, HTTP on `http_address`); none changes its state."""
    with ServerProcess(
        EXAMPLE_BUNDLE, "--http-listen", "127.0.0.1:0", "--max-batch", "5"
    ) as server:
        assert server.http_address is not None, server.stderr
        yield server


@pytest.fixture(scope="session")
def http(http_server: ServerProcess) -> str:
    assert http_server.http_address is not None
    return http_server.http_address
