"""A server over the observability test bundle, shared by the modules that only call it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.observability import make_bundle
from tests.support.server import ServerProcess


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The observability bundle (no decision_log section); no test changes it."""
    return make_bundle(tmp_path_factory.mktemp("obs") / "bundle")


@pytest.fixture(scope="session")
def stdout_server(bundle: Path) -> Iterator[ServerProcess]:
    """One server logging decisions to stdout (the default) for the tests that only call it
    (test_decision_log.py, test_masking.py: one xdist group, so one worker starts it): each
    reads the lines written after it started (`log_entries(..., since=)`)."""
    with ServerProcess(bundle) as server:
        yield server
