"""Shared fixtures: the example bundle and a running server over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import REPO, ServerProcess

EXAMPLE_BUNDLE = REPO / "policies"
CONFORMANCE = REPO.parent / "shared" / "conformance" / "cedar"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"conformance cases not found at {CONFORMANCE}")
    return CONFORMANCE


@pytest.fixture
def example_server() -> Iterator[ServerProcess]:
    with ServerProcess(EXAMPLE_BUNDLE) as server:
        yield server
