"""Envoy ext_authz Check against a real `pdp serve` of the example bundle: BOLA, BFLA, services.

Requests are real xds-protos CheckRequests as Envoy's HTTP filter sends them; tokens are real
ES256 JWTs signed with the key whose public half is policies/keys/orders.jwks.json. The server
listens on a Unix socket, a transport on which Envoy's `source.principal` is trusted.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.gateway import (
    CHECKOUT,
    REPORTING_KEY,
    bearer,
    bundle_with,
    check_request,
    ext_authz,
    headers_of,
    log_entry,
    metadata_of,
    token,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.routes import CONFUSION
from tests.support.server import InProcessServer, ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("extauthz")

OK, PERMISSION_DENIED, UNAUTHENTICATED = 0, 7, 16
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
INVALID_TOKEN = 'Bearer error="invalid_token"'


def _ext(extensions: dict[str, str]) -> dict[str, Any]:
    return {"context_extensions": extensions}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with (
        tempfile.TemporaryDirectory(prefix="pdp-extauthz-") as folder,
        ServerProcess(EXAMPLE_BUNDLE, listen=f"unix:{folder}/pdp.sock") as running,
    ):
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizationStub]:
    assert server.address is not None
    with ext_authz(server.address) as client:
        yield client


def call(stub: pb_grpc.AuthorizationStub, *args: Any, **kwargs: Any) -> pb.CheckResponse:
    return stub.Check(check_request(*args, **kwargs), timeout=10)


def assert_allowed(response: pb.CheckResponse, principal: str, policies: list[str]) -> str:
    """The full allow shape; returns the decision id."""
    assert response.status.code == OK
    assert not response.HasField("denied_response")
    ok = response.ok_response
    metadata = metadata_of(response)
    decision_id = metadata["decision_id"]
    assert headers_of(ok.headers) == {
        "x-pdp-principal": principal,
        "x-pdp-decision-id": decision_id,
    }
    assert all(o.append_action == OVERWRITE for o in ok.headers)
    assert list(ok.headers_to_remove) == [
        "x-user-id",
        "x-forwarded-user",
        "x-http-method-override",
        "x-method-override",
        "x-http-method",
    ]
    assert metadata["decision"] == "allow"
    assert metadata["determining_policies"] == policies
    assert metadata["principal"] == principal
    assert metadata["bundle_revision"].startswith("sha256:")
    assert "reason" not in metadata
    return decision_id


def assert_denied(
    response: pb.CheckResponse,
    http: int,
    error: str,
    reason: str,
    www: str | None = None,
) -> dict[str, Any]:
    """The full deny shape; returns the dynamic metadata."""
    expected_code = UNAUTHENTICATED if http == 401 else PERMISSION_DENIED
    assert response.status.code == expected_code
    assert not response.HasField("ok_response")
    denied = response.denied_response
    assert denied.status.code == http
    headers = headers_of(denied.headers)
    expected = {"content-type": "application/json"}
    if www is not None:
        expected["www-authenticate"] = www
    assert headers == expected
    body = json.loads(denied.body)
    metadata = metadata_of(response)
    assert body == {"error": error, "decision_id": metadata["decision_id"]}
    assert metadata["decision"] == "deny"
    assert metadata["reason"] == reason
    return metadata


def test_bola_user_42_may_not_list_the_orders_of_user_43(stub: pb_grpc.AuthorizationStub) -> None:
    response = call(stub, "GET", "/api/users/43/orders", bearer(token("42")))
    metadata = assert_denied(response, 403, "forbidden", "policy")
    assert metadata["principal"] == 'User::"42"'
    assert metadata["route"] == "list-user-orders"
    assert metadata["identity"] == "jwt"
    assert metadata["determining_policies"] == []


def test_user_42_lists_their_own_orders_with_a_query_string(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    response = call(stub, "GET", "/api/users/42/orders?status=open&page=2", bearer(token("42")))
    assert_allowed(response, 'User::"42"', ["customer-list-own-orders"])
    assert metadata_of(response)["route"] == "list-user-orders"


def test_bola_on_a_single_order(stub: pb_grpc.AuthorizationStub) -> None:
    mine = call(stub, "GET", "/api/orders/o-1001", bearer(token("42")))
    assert_allowed(mine, 'User::"42"', ["customer-read-own-order"])
    theirs = call(stub, "GET", "/api/orders/o-1003", bearer(token("42")))
    assert_denied(theirs, 403, "forbidden", "policy")


def test_bfla_a_non_admin_may_not_call_the_admin_function(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    response = call(stub, "GET", "/api/admin/users/43/orders", bearer(token("42")))
    metadata = assert_denied(response, 403, "forbidden", "policy")
    assert metadata["determining_policies"] == ["admin-functions-require-admin"]
    assert metadata["route"] == "admin-list-user-orders"


def test_an_admin_may_call_the_admin_function(stub: pb_grpc.AuthorizationStub) -> None:
    response = call(stub, "GET", "/api/admin/users/43/orders", bearer(token("admin-ada")))
    assert_allowed(response, 'User::"admin-ada"', ["admin-call-admin-functions"])


def test_an_admin_known_only_from_the_token_roles(stub: pb_grpc.AuthorizationStub) -> None:
    admin = token("900", roles=["admin"], email="new@acme.example", tenant="acme")
    response = call(stub, "GET", "/api/admin/users/43/orders", bearer(admin))
    assert_allowed(response, 'User::"900"', ["admin-call-admin-functions"])


def test_token_roles_never_override_the_bundle_entity(stub: pb_grpc.AuthorizationStub) -> None:
    # User 42 is in entities.json without the admin role: a token claiming it changes nothing.
    response = call(stub, "GET", "/api/admin/users/43/orders", bearer(token("42", roles=["admin"])))
    assert_denied(response, 403, "forbidden", "policy")


def test_the_checkout_service_reserves_stock_by_spiffe_id(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    response = call(stub, "POST", "/internal/orders/o-1001/reserve", peer=CHECKOUT)
    assert_allowed(response, f'Service::"{CHECKOUT}"', ["checkout-reserve-stock"])
    assert metadata_of(response)["identity"] == "mtls"


def test_other_callers_may_not_reserve_stock(stub: pb_grpc.AuthorizationStub) -> None:
    other = "spiffe://cluster.local/ns/shop/sa/recommendations"
    response = call(stub, "POST", "/internal/orders/o-1001/reserve", peer=other)
    assert_denied(response, 403, "forbidden", "policy")
    # A user token wins over the peer for the principal; users may not call internal endpoints.
    as_user = call(
        stub, "POST", "/internal/orders/o-1001/reserve", bearer(token("42")), peer=CHECKOUT
    )
    metadata = assert_denied(as_user, 403, "forbidden", "policy")
    assert metadata["determining_policies"] == ["reserve-stock-services-only"]
    foreign = "spiffe://evil.example/ns/shop/sa/checkout"
    assert_denied(
        call(stub, "POST", "/internal/orders/o-1001/reserve", peer=foreign),
        401,
        "unauthenticated",
        "untrusted_peer",
        INVALID_TOKEN,
    )


def test_no_credential_is_401_with_a_bearer_challenge(stub: pb_grpc.AuthorizationStub) -> None:
    response = call(stub, "GET", "/api/orders/o-1001")
    metadata = assert_denied(response, 401, "unauthenticated", "policy", "Bearer")
    assert metadata["principal"] == 'Anonymous::"anonymous"'
    assert "anonymous-denied" in metadata["determining_policies"]


def test_a_bad_token_is_401_invalid_token(stub: pb_grpc.AuthorizationStub) -> None:
    response = call(stub, "GET", "/api/orders/o-1001", bearer(token("42", exp=1)))
    metadata = assert_denied(response, 401, "unauthenticated", "expired", INVALID_TOKEN)
    assert "principal" not in metadata


def test_unknown_routes_are_denied_with_the_configured_status(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    for method, path in [
        ("GET", "/api/users/42/orders/export"),
        ("DELETE", "/api/orders/o-1001"),
        ("GET", "/API/admin/users/43/orders"),
        ("GET", "/api/admin%2Fusers/43/orders"),
    ]:
        response = call(stub, method, path, bearer(token("admin-ada")))
        metadata = assert_denied(response, 404, "unknown_route", "unknown_route")
        assert "route" not in metadata


def test_path_tricks_land_on_the_route_they_resolve_to(stub: pb_grpc.AuthorizationStub) -> None:
    # /api/admin/../users/42/orders is the user's own list, not the admin function.
    response = call(stub, "GET", "/api/admin/../users/42/orders", bearer(token("42")))
    assert_allowed(response, 'User::"42"', ["customer-list-own-orders"])
    sneaky = call(stub, "GET", "/api/users/..//admin/users/43/orders", bearer(token("42")))
    assert metadata_of(sneaky)["route"] == "admin-list-user-orders"
    assert_denied(sneaky, 403, "forbidden", "policy")


def test_header_map_form_works_like_headers(stub: pb_grpc.AuthorizationStub) -> None:
    header_map = [
        (":method", "GET"),
        (":path", "/api/users/42/orders"),
        ("Authorization", f"Bearer {token('42')}"),
    ]
    response = call(stub, "GET", "/api/users/42/orders", header_map=header_map)
    assert_allowed(response, 'User::"42"', ["customer-list-own-orders"])
    doubled = [*header_map, ("authorization", f"Bearer {token('admin-ada')}")]
    response = call(stub, "GET", "/api/users/42/orders", header_map=doubled)
    assert_denied(
        response, 401, "unauthenticated", "duplicate_credential", 'Bearer error="invalid_request"'
    )


def test_identity_headers_sent_by_the_client_are_overwritten_never_believed(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    spoofed = {
        **bearer(token("42")),
        "x-pdp-principal": 'User::"admin-ada"',
        "x-pdp-decision-id": "forged",
        "x-user-id": "admin-ada",
    }
    denied = call(stub, "GET", "/api/admin/users/43/orders", spoofed)
    assert_denied(denied, 403, "forbidden", "policy")
    allowed = call(stub, "GET", "/api/users/42/orders", spoofed)
    decision_id = assert_allowed(allowed, 'User::"42"', ["customer-list-own-orders"])
    assert decision_id != "forged"


def test_api_keys(stub: pb_grpc.AuthorizationStub) -> None:
    known = call(stub, "GET", "/api/orders/o-1001", {"x-api-key": REPORTING_KEY})
    metadata = assert_denied(known, 403, "forbidden", "policy")
    assert (metadata["identity"], metadata["principal"]) == ("api_key", 'ApiClient::"reporting"')
    unknown = call(stub, "GET", "/api/orders/o-1001", {"x-api-key": REPORTING_KEY + "x"})
    assert_denied(unknown, 401, "unauthenticated", "unknown_api_key", INVALID_TOKEN)


def test_context_extensions_override_action_and_resource(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    # An Envoy route marks its endpoint as the admin function, whatever the path looks like.
    ext = {"pdp.action": "adminListUserOrders"}
    response = call(stub, "GET", "/api/users/42/orders", bearer(token("42")), None, **_ext(ext))
    metadata = assert_denied(response, 403, "forbidden", "policy")
    assert metadata["determining_policies"] == ["admin-functions-require-admin"]
    # An endpoint with no route of its own, mapped entirely by the Envoy route.
    ext = {"pdp.action": "readOrder", "pdp.resource": 'Order::"o-1001"'}
    legacy = call(stub, "GET", "/legacy/order", bearer(token("42")), context_extensions=ext)
    assert_allowed(legacy, 'User::"42"', ["customer-read-own-order"])
    bad = {"pdp.route": "no-such-route"}
    response = call(stub, "GET", "/api/orders/o-1001", bearer(token("42")), context_extensions=bad)
    assert_denied(response, 404, "unknown_route", "unknown_route")


def test_decisions_reach_the_decision_log_with_gateway_fields(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    response = call(stub, "GET", "/api/users/43/orders?x=1", bearer(token("42", jti="log-1")))
    decision_id = metadata_of(response)["decision_id"]
    entry = log_entry(server, decision_id)
    assert entry["api"] == "Check" and entry["decision"] == "deny"
    assert entry["path"] == "/api/users/43/orders"
    assert entry["http_status"] == 403 and entry["identity_kind"] == "jwt"
    assert entry["token_jti"] == "log-1" and entry["route"] == "list-user-orders"
    assert token("42") not in server.stdout + server.stderr


def test_the_check_service_is_listed_by_reflection(server: ServerProcess) -> None:
    assert server.address is not None
    with grpc.insecure_channel(server.address) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(reflect.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in answer.list_services_response.service}
    assert "envoy.service.auth.v3.Authorization" in names


def test_a_bundle_without_routes_denies_every_check(tmp_path: Path) -> None:
    root = bundle_with(tmp_path / "bundle")
    (root / "routes.yaml").unlink()
    # What the servicer does without routes: the real server in this process.
    with (
        InProcessServer.over(root, f"unix:{tmp_path}/pdp.sock") as running,
        ext_authz(running.address) as client,
    ):
        response = call(client, "GET", "/api/users/42/orders", bearer(token("42")))
    assert_denied(response, 403, "unknown_route", "no_routes")


@pytest.mark.parametrize(("method", "target", "route"), CONFUSION)
def test_path_confusion_through_the_server(
    stub: pb_grpc.AuthorizationStub, method: str, target: str, route: str | None
) -> None:
    identity = bearer(token("admin-ada")) if route != "reserve-stock" else {}
    response = call(stub, method, target, identity, peer=CHECKOUT)
    metadata = metadata_of(response)
    assert metadata.get("route") == route
    if route is None:
        assert_denied(response, 404, "unknown_route", "unknown_route")
