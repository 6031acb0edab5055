"""Property-based fuzzing of Envoy's Check, live: nothing is allowed without a valid credential.

The server serves the example bundle on plaintext TCP; requests carry forged, random or no
credentials, odd methods, paths and headers. After the run the process must still be alive
and SERVING. (The pdp.v1 calls are fuzzed in test_fuzz_requests.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.service.auth.v3 import external_auth_pb2 as ext_pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from hypothesis import given
from hypothesis import strategies as st

from tests.support.gateway import check_request, metadata_of
from tests.support.hardening import FUZZ, TIMEOUT, assert_alive_and_serving
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

pytestmark = pytest.mark.xdist_group("hardening-fuzz")

ATTACKER = ec.generate_private_key(ec.SECP256R1())
NOW = 1_900_000_000
FORGED = [
    jwt.encode(
        {"iss": "https://auth.shop.example/", "aud": "orders-api", "sub": "42", "exp": NOW},
        ATTACKER,
        algorithm="ES256",
        headers={"kid": "orders-2026-01"},
    ),
    jwt.encode({"sub": "admin", "roles": ["admin"]}, key=None, algorithm="none"),
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
    "not-a-token",
    "a.b.c",
    "",
]
header_names = st.one_of(
    st.sampled_from(
        ["authorization", "x-api-key", "cookie", "x-user-id", "x-pdp-principal", "host", ":path"]
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=16),
)
header_values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(FORGED).map(lambda t: f"Bearer {t}"),
    st.sampled_from(FORGED),
    st.sampled_from(["Basic YWRtaW46YWRtaW4=", "Bearer", "pdp-example-reporting-ke", "x" * 9000]),
)
route_paths = [
    "/api/orders/o-1001",
    "/api/orders/o-1001/cancel",
    "/api/users/42/orders",
    "/api/admin/users/42/orders",
    "/api/admin/orders/o-1001/refund",
    "/internal/orders/o-1001/reserve",
    "/api/orders/../admin/orders/o-1/refund",
    "/api/admin%2Forders",
    "/API/admin/users/1/orders",
    "/api/users/42/orders;x=1",
    "/api/users/%34%32/orders?x=%ff",
    "//api//orders//o-1001//",
    "/" + "a/" * 5000,
]
paths = st.one_of(
    st.sampled_from(route_paths),
    st.text(max_size=120).map(lambda t: "/" + t),
    st.text(max_size=30),
    st.builds(lambda p, q: f"{p}?{q}", st.sampled_from(route_paths), st.text(max_size=30)),
)
methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "get", "", "CONNECT"]),
    st.text(max_size=8),
)
extensions = st.dictionaries(
    st.sampled_from(["pdp.route", "pdp.action", "pdp.resource", "other"]),
    st.one_of(
        st.sampled_from(["read-order", "refundOrder", 'Order::"{orderId}"', "{x}", 'A::"b"']),
        st.text(max_size=20),
    ),
    max_size=3,
)


@st.composite
def check_requests(draw: st.DrawFn) -> ext_pb.CheckRequest:
    headers = draw(st.dictionaries(header_names, header_values, max_size=6))
    method, path = draw(methods), draw(paths)
    if draw(st.booleans()):
        pairs = list(headers.items()) + draw(st.lists(st.tuples(header_names, header_values)))
        message = check_request(method, path, header_map=pairs[:40])
    else:
        message = check_request(method, path, headers)
    message.attributes.source.principal = draw(st.one_of(st.just(""), st.text(max_size=40)))
    message.attributes.context_extensions.update(draw(extensions))
    return message


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[ServerProcess]:
    with ServerProcess(EXAMPLE_BUNDLE, "--decision-log", "off") as running:
        yield running


def test_random_checks_without_a_valid_credential_are_never_allowed(
    gateway_server: ServerProcess,
) -> None:
    assert gateway_server.address is not None
    with grpc.insecure_channel(gateway_server.address) as channel:
        stub = ext_grpc.AuthorizationStub(channel)

        @FUZZ
        @given(check_requests())
        def run(message: ext_pb.CheckRequest) -> None:
            response = stub.Check(message, timeout=TIMEOUT)
            assert response.status.code in (7, 16), response  # never OK
            denied = response.denied_response
            assert denied.status.code in (400, 401, 403, 404, 414, 431, 503), denied
            assert json.loads(denied.body)["decision_id"]
            assert metadata_of(response)["reason"] != "internal_error"

        run()
    assert_alive_and_serving(gateway_server)
