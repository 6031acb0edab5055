"""One real `pdp serve` process over a small bundle, shared by the server tests of a worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.grpc_calls import TIMEOUT
from tests.support.server import ServerProcess
from tests.support.server_bundles import plain_bundle

MAX_BATCH = 5
MAX_MESSAGE_BYTES = 64 * 1024


@pytest.fixture(scope="session")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plain_bundle(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="session")
def plain_server(plain_dir: Path) -> Iterator[ServerProcess]:
    limits = ("--max-batch", str(MAX_BATCH), "--max-message-bytes", str(MAX_MESSAGE_BYTES))
    with ServerProcess(plain_dir, *limits) as server:
        yield server


@pytest.fixture(scope="session")
def plain_channel(plain_server: ServerProcess) -> Iterator[grpc.Channel]:
    assert plain_server.address is not None
    with grpc.insecure_channel(plain_server.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield channel


@pytest.fixture(scope="session")
def authorizer(plain_channel: grpc.Channel) -> pb_grpc.AuthorizerStub:
    return pb_grpc.AuthorizerStub(plain_channel)
