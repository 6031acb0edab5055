"""The gateway decision without a transport: the Cedar request, principal header, errors."""

from __future__ import annotations

import json

from pdp.authn.identity import key_lookup
from pdp.authn.jwks import Keyring
from pdp.bundle import load_bundle
from pdp.gateway.check import check, internal_error
from pdp.gateway.result import GatewayRequest
from pdp.server import envoy
from tests.support.gateway import bearer, token
from tests.support.paths import EXAMPLE_BUNDLE

BUNDLE = load_bundle(EXAMPLE_BUNDLE)
LOOKUP = key_lookup(Keyring())


def request(method: str, path: str, headers: dict[str, str] | None = None, **kw) -> GatewayRequest:
    values = {k: (v,) for k, v in (headers or {}).items()}
    return GatewayRequest(method, path, values, source_address="10.0.0.9", **kw)


def test_the_cedar_request_for_a_user_known_only_from_the_token() -> None:
    value = token("900", roles=["admin"], tenant="acme", scope="orders:read orders:admin")
    answer = check(BUNDLE, request("GET", "/api/admin/users/43/orders?x=1", bearer(value)), LOOKUP)
    authz = answer.result.request
    assert answer.allowed and authz is not None
    assert str(authz.principal) == 'User::"900"'
    assert str(authz.action) == 'Action::"adminListUserOrders"'
    assert str(authz.resource) == 'User::"43"'
    assert authz.context == {
        "method": "GET",
        "path": "/api/admin/users/43/orders",
        "source_ip": {"__extn": {"fn": "ip", "arg": "10.0.0.9"}},
        "scopes": ["orders:read", "orders:admin"],
    }
    (entity,) = json.loads(authz.entities_json or "[]")
    assert entity["parents"] == [{"type": "Role", "id": "admin"}]
    assert entity["attrs"]["tenant"] == {"__entity": {"type": "Tenant", "id": "acme"}}


def test_a_principal_of_the_bundle_is_not_sent_as_a_request_entity() -> None:
    answer = check(BUNDLE, request("GET", "/api/users/42/orders", bearer(token("42"))), LOOKUP)
    assert answer.result.request is not None and answer.result.request.entities_json is None


def test_principal_header_is_ascii_and_escaped() -> None:
    value = token('we"ird\u00e9\nid')
    answer = check(BUNDLE, request("GET", "/api/users/x/orders", bearer(value)), LOOKUP)
    assert answer.allowed is False  # not their orders; the header is built on allow only
    assert answer.result.principal is not None
    name = "caf\u00e9"
    allowed = check(
        BUNDLE, request("GET", f"/api/users/{name}/orders", bearer(token(name))), LOOKUP
    )
    assert dict(allowed.headers)["x-pdp-principal"] == 'User::"caf\\u00e9"'


def test_internal_errors_are_403_denies_without_details() -> None:
    answer = internal_error(BUNDLE, request("GET", "/x"), RuntimeError("secret detail"))
    assert (answer.allowed, answer.http_status, answer.result.reason) == (
        False,
        403,
        "internal_error",
    )
    assert "secret" not in answer.body and "secret" not in json.dumps(answer.metadata)
    message = envoy.check_response(answer)
    assert message.status.code == 7 and message.denied_response.status.code == 403
