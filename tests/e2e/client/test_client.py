"""pdp.client against real `pdp serve` processes: values, typed errors, retries, deadlines,
unix sockets, TLS and mTLS, and the asyncio client."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.client import (
    AsyncAuthorizerClient,
    AuthorizerClient,
    BadRequest,
    DeadlineExceeded,
    PdpError,
    PlanKind,
    Request,
    ResourceExhausted,
    Tls,
    Uid,
    Unavailable,
)
from pdp.plan.predicate import to_predicate
from tests.support.certs import certificate_authority, leaf
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("client")

OWNER = ('User::"42"', "readOrder", ("Order", "o-1001"))


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(EXAMPLE_BUNDLE, "--max-batch", "50") as running:
        yield running


@pytest.fixture
def client(server: ServerProcess) -> Iterator[AuthorizerClient]:
    assert server.address is not None
    with AuthorizerClient(server.address) as found:
        yield found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "principal",
    ['User::"42"', ("User", "42"), Uid("User", "42"), {"type": "User", "id": "42"}],
    ids=["text", "tuple", "Uid", "dict"],
)
def test_every_uid_form_asks_the_same(client: AuthorizerClient, principal) -> None:
    decision = client.is_authorized(principal, "readOrder", 'Order::"o-1001"')
    assert decision.allowed and bool(decision)
    assert decision.determining_policies == ("customer-read-own-order",)
    assert decision.bundle_revision.startswith("sha256:")


def test_a_deny_is_falsy_and_says_nothing_determined_it(client: AuthorizerClient) -> None:
    decision = client.is_authorized('User::"42"', 'Action::"readOrder"', 'Order::"o-1003"')
    assert not decision and decision.determining_policies == ()


def test_batch_plan_and_status(client: AuthorizerClient) -> None:
    decisions = client.batch_is_authorized(
        [OWNER, Request('User::"42"', "readOrder", 'Order::"o-1003"')]
    )
    assert [d.allowed for d in decisions] == [True, False]
    plan = client.plan_resources('User::"42"', "listOrders", "Order")
    assert plan.kind is PlanKind.CONDITIONAL
    rows = [{"owner": {"__entity": {"type": "User", "id": o}}} for o in ("42", "43")]
    keep = to_predicate(plan)
    assert [keep(row) for row in rows] == [True, False]
    status = client.status()
    assert status.serving and status.bundle_name == "orders-api"


def test_bad_input_is_bad_request_naming_the_field(client: AuthorizerClient) -> None:
    with pytest.raises(BadRequest) as refused:
        client.is_authorized(*OWNER, context={"bogus": 1})
    assert refused.value.field == "context"
    assert refused.value.status == "INVALID_ARGUMENT"
    with pytest.raises(BadRequest) as refused:
        client.is_authorized("not a uid", "readOrder", 'Order::"o-1001"')
    assert refused.value.field == "principal"
    with pytest.raises(BadRequest) as refused:
        client.is_authorized(*OWNER, context={"x": float("nan")})
    assert refused.value.field == "context"


def test_a_malformed_batch_item_is_a_deny_naming_it(client: AuthorizerClient) -> None:
    decisions = client.batch_is_authorized([OWNER, (("User", "42"), "readOrder", ("", "x"))])
    assert decisions[0].allowed and not decisions[1].allowed
    assert decisions[1].errors[0].startswith("invalid request: requests[1].resource.type")


def test_over_a_limit_is_resource_exhausted(client: AuthorizerClient) -> None:
    with pytest.raises(ResourceExhausted) as refused:
        client.batch_is_authorized([OWNER] * 51)
    assert refused.value.field == "requests"
    assert isinstance(refused.value, BadRequest)


def test_an_expired_deadline_is_deadline_exceeded(client: AuthorizerClient) -> None:
    with pytest.raises(DeadlineExceeded):
        client.batch_is_authorized([OWNER] * 50, timeout=1e-6)


def test_nobody_listening_is_unavailable() -> None:
    nowhere = AuthorizerClient(f"127.0.0.1:{_free_port()}", timeout=5)
    with nowhere, pytest.raises(Unavailable) as failed:
        nowhere.is_authorized(*OWNER)
    assert isinstance(failed.value, PdpError)


def _metric(port: int, line_start: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        for line in page.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_unavailable_is_retried_by_grpc_and_bad_requests_are_not(tmp_path: Path) -> None:
    """No bundle yet: the server answers UNAVAILABLE having decided nothing; grpc's retry
    policy asks three times in all. INVALID_ARGUMENT is never retried."""
    port = _free_port()
    with ServerProcess(
        tmp_path / "later", "--wait-for-bundle", "--metrics", f"127.0.0.1:{port}"
    ) as waiting:
        assert waiting.address is not None
        client = AuthorizerClient(waiting.address, timeout=10)
        with client, pytest.raises(Unavailable) as failed:
            client.is_authorized(*OWNER)
        assert "no valid policy bundle" in failed.value.message
        counted = 'pdp_request_errors_total{api="IsAuthorized",code="UNAVAILABLE"}'
        assert _metric(port, counted) == 3.0
    port = _free_port()
    with ServerProcess(EXAMPLE_BUNDLE, "--metrics", f"127.0.0.1:{port}") as serving:
        assert serving.address is not None
        with AuthorizerClient(serving.address) as client, pytest.raises(BadRequest):
            client.is_authorized(*OWNER, context={"bogus": 1})
        counted = 'pdp_request_errors_total{api="IsAuthorized",code="INVALID_ARGUMENT"}'
        assert _metric(port, counted) == 1.0


def test_unix_socket_target(tmp_path: Path) -> None:
    path = tmp_path / "pdp.sock"
    with (
        ServerProcess(EXAMPLE_BUNDLE, listen=f"unix:{path}"),
        AuthorizerClient(f"unix:{path}") as client,
    ):
        assert client.is_authorized(*OWNER).allowed


def test_tls_and_mtls(tmp_path: Path) -> None:
    ca = certificate_authority("pdp test CA")
    cert, key = leaf(ca, "pdp", server=True).write(tmp_path, "server")
    client_cert, client_key = leaf(ca, "orders-service", server=False).write(tmp_path, "client")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert)
    flags = ("--tls-cert", str(cert), "--tls-key", str(key), "--client-ca", str(ca_file))
    with ServerProcess(EXAMPLE_BUNDLE, *flags) as server:
        assert server.address is not None
        tls = Tls(ca=str(ca_file), cert=str(client_cert), key=str(client_key))
        with AuthorizerClient(server.address, tls=tls) as client:
            assert client.is_authorized(*OWNER).allowed
        no_cert = Tls(ca=ca.cert)
        client = AuthorizerClient(server.address, tls=no_cert)
        with client, pytest.raises(Unavailable):
            client.is_authorized(*OWNER)
        with AuthorizerClient(server.address) as plaintext, pytest.raises(Unavailable):
            plaintext.is_authorized(*OWNER)


def test_the_asyncio_client(server: ServerProcess) -> None:
    assert server.address is not None
    address = server.address

    async def main() -> None:
        async with AsyncAuthorizerClient(address) as client:
            assert (await client.is_authorized(*OWNER)).allowed
            batch = await client.batch_is_authorized([OWNER, OWNER])
            assert [d.allowed for d in batch] == [True, True]
            plan = await client.plan_resources('User::"admin-ada"', "listOrders", "Order")
            assert plan.kind is PlanKind.ALWAYS_ALLOWED
            assert (await client.status()).serving
            with pytest.raises(BadRequest) as refused:
                await client.is_authorized(*OWNER, context={"bogus": 1})
            assert refused.value.field == "context"

    asyncio.run(main())
