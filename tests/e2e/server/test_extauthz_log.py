"""The decision log line of a Check ties it to the proxy: request id, trace id, the path
routes saw. Through a real `pdp serve`, reading the decision log it writes to stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc

from tests.support.gateway import bearer, check_request, ext_authz, log_entry, metadata_of, token
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("extauthz-log")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("log")
    with ServerProcess(EXAMPLE_BUNDLE, listen=f"unix:{folder}/pdp.sock") as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizationStub]:
    with ext_authz(server.address or "") as client:
        yield client


def logged(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub, *args: Any, **kwargs: Any
) -> tuple[dict[str, Any], str]:
    """The decision log entry of one Check, and its raw line."""
    response = stub.Check(check_request(*args, **kwargs), timeout=10)
    entry = log_entry(server, metadata_of(response)["decision_id"])
    return entry, json.dumps(entry)


def test_envoys_request_id_and_the_trace_id_are_logged(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    headers = {**bearer(token("42")), "traceparent": TRACEPARENT, "x-request-id": "client-sent"}
    entry, _ = logged(
        server, stub, "GET", "/api/users/42/orders", headers, request_id="f81d4fae-7dec-11d0"
    )
    assert entry["decision"] == "allow"
    assert entry["request_id"] == "f81d4fae-7dec-11d0"
    assert entry["trace_id"] == TRACE


def test_without_envoys_id_the_x_request_id_header_is_logged(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    headers = {**bearer(token("42")), "x-request-id": "abc-123"}
    entry, _ = logged(server, stub, "GET", "/api/users/43/orders", headers, request_id="")
    assert entry["decision"] == "deny"
    assert entry["request_id"] == "abc-123"
    assert "trace_id" not in entry


def test_a_header_map_traceparent_of_a_later_version_is_read(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    header_map = [
        ("authorization", f"Bearer {token('42')}"),
        ("traceparent", f"01-{TRACE}-00f067aa0ba902b7-01-what-comes-next"),
    ]
    entry, _ = logged(server, stub, "GET", "/api/users/42/orders", header_map=header_map)
    assert entry["trace_id"] == TRACE


@pytest.mark.parametrize(
    "value",
    [
        TRACEPARENT.upper(),  # hex is lowercase only
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # an all-zero parent id
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is never valid
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 ends with the flags
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
        f"00-{TRACE}-00f067aa0ba902b7",
        f"00_{TRACE}_00f067aa0ba902b7_01",
        f'00-{TRACE}-00f067aa0ba902b7-01","trace_id":"injected',
        f"00-{TRACE}-00f067aa0ba902b7-01,00-{TRACE}-00f067aa0ba902b7-01",  # two, joined
    ],
)
def test_a_malformed_traceparent_is_ignored_and_never_logged(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub, value: str
) -> None:
    headers = {**bearer(token("42")), "traceparent": value}
    entry, line = logged(server, stub, "GET", "/api/users/42/orders", headers)
    assert entry["decision"] == "allow"
    assert "trace_id" not in entry
    assert value not in line and "injected" not in line


def test_two_traceparent_headers_are_ignored(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    header_map = [
        ("authorization", f"Bearer {token('42')}"),
        ("traceparent", TRACEPARENT),
        ("traceparent", f"00-{'1' * 32}-00f067aa0ba902b7-01"),
    ]
    entry, _ = logged(server, stub, "GET", "/api/users/42/orders", header_map=header_map)
    assert "trace_id" not in entry


@pytest.mark.parametrize("value", ["has space", "x" * 129, "tab\there", "ünïcode"])
def test_a_request_id_that_is_not_a_plain_token_is_not_logged(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub, value: str
) -> None:
    entry, line = logged(server, stub, "GET", "/api/users/42/orders", request_id=value)
    assert "request_id" not in entry
    assert json.dumps(value)[1:-1] not in line


def test_an_authentication_failure_logs_the_normalized_path(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    expired = token("42", exp=1_000_000_000, iat=999_999_000)
    path = "/api/admin/../users/42//orders/./?status=open"
    entry, _ = logged(server, stub, "GET", path, bearer(expired))
    assert (entry["http_status"], entry["authn_failure"]) == (401, "expired")
    assert entry["path"] == "/api/users/42/orders"
    assert "path_invalid" not in entry


@pytest.mark.parametrize("credential", ["none", "expired", "valid"])
def test_a_path_that_cannot_be_normalized_is_logged_as_null_and_flagged(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub, credential: str
) -> None:
    headers = {
        "none": {},
        "expired": bearer(token("42", exp=1_000_000_000, iat=999_999_000)),
        "valid": bearer(token("42")),
    }[credential]
    entry, line = logged(server, stub, "GET", "/api/orders%2Fo-1001/../x", headers)
    assert entry["path"] is None and entry["path_invalid"] is True
    assert "%2F" not in line
    if credential == "valid":
        assert entry["unknown_route"] is True
