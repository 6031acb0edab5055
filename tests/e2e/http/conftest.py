"""One real `pdp serve --http-listen` over the example bundle, shared by a worker's HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess


@pytest.fixture(scope="session")
def http_server() -> Iterator[ServerProcess]:
    with ServerProcess(
        EXAMPLE_BUNDLE, "--http-listen", "127.0.0.1:0", "--max-batch", "5"
    ) as server:
        assert server.http_address is not None, server.stderr
        yield server


@pytest.fixture(scope="session")
def http(http_server: ServerProcess) -> str:
    assert http_server.http_address is not None
    return http_server.http_address
