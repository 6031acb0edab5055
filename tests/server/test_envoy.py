"""Envoy ext_authz v3 protobuf conversion (pdp/server/envoy.py): requests in, responses out,
and its shortcuts equal to the general encoders."""

from __future__ import annotations

import json

import pytest
from envoy.service.auth.v3 import external_auth_pb2 as pb
from google.protobuf import json_format, struct_pb2

from pdp.authn.cache import TokenCache
from pdp.authn.identity import key_lookup
from pdp.authn.jwks import Keyring
from pdp.bundle import load_bundle
from pdp.gateway.check import check
from pdp.gateway.result import GatewayRequest
from pdp.server import envoy
from tests.support.gateway import CHECKOUT, bearer, check_request, token
from tests.support.lookup import CountingLookup
from tests.support.paths import EXAMPLE_BUNDLE

BUNDLE = load_bundle(EXAMPLE_BUNDLE)
LOOKUP = key_lookup(Keyring())


def request(method: str, path: str, headers: dict[str, str] | None = None) -> GatewayRequest:
    values = {k: (v,) for k, v in (headers or {}).items()}
    return GatewayRequest(method, path, values, source_address="10.0.0.9")


def test_envoy_conversion_reads_both_header_forms_and_guards_trust() -> None:
    headers_form = check_request("GET", "/p?q=1", {"Authorization": "Bearer t"}, peer=CHECKOUT)
    map_form = check_request("GET", "/p?q=1", header_map=[("Authorization", "Bearer t")])
    for message in (headers_form, map_form):
        plain = envoy.gateway_request(message, trusted=False)
        assert plain.headers["authorization"] == ("Bearer t",)
        assert (plain.method, plain.path, plain.source_address) == ("GET", "/p?q=1", "10.1.2.3")
        assert plain.peer is None and plain.metadata is None
    assert envoy.gateway_request(headers_form, trusted=True).peer == CHECKOUT


def test_envoy_query_field_is_appended_when_path_lacks_it() -> None:
    message = check_request("GET", "/p")
    message.attributes.request.http.query = "a=1"
    assert envoy.gateway_request(message, trusted=False).path == "/p?a=1"


def test_fallback_deny_always_has_a_status() -> None:
    message = envoy.fallback_deny("d-1")
    assert message.status.code == 7
    assert json.loads(message.denied_response.body) == {"error": "forbidden", "decision_id": "d-1"}


def test_check_response_shapes_round_trip_as_json() -> None:
    answer = check(BUNDLE, request("GET", "/api/users/42/orders", bearer(token("42"))), LOOKUP)
    message = envoy.check_response(answer)
    assert json_format.MessageToDict(message)["status"] == {}  # code 0, OK
    parsed = pb.CheckResponse()
    parsed.ParseFromString(message.SerializeToString())
    assert parsed == message


def test_headers_read_lazily_equal_the_copied_ones() -> None:
    headers = {"authorization": "Bearer t", "x-api-key": "k", "user-agent": "curl"}
    lazy = envoy.gateway_request(check_request("GET", "/p", headers), False).headers
    mixed = {name.title(): value for name, value in headers.items()}
    copied = envoy.gateway_request(check_request("GET", "/p", mixed), False).headers
    assert type(copied) is dict and type(lazy) is not dict
    assert dict(lazy) == copied
    assert lazy.get("authorization") == ("Bearer t",) and lazy["x-api-key"] == ("k",)
    assert lazy.get("cookie") is None and lazy.get("cookie", ()) == () and "cookie" not in lazy
    with pytest.raises(KeyError):
        lazy["cookie"]


def _responses() -> list:
    tokens = TokenCache(BUNDLE.gateway.identity.jwt)  # type: ignore[union-attr, arg-type]
    cases = [
        ("GET", "/api/users/42/orders", bearer(token("42"))),  # allow
        ("GET", "/api/users/43/orders", bearer(token("42"))),  # policy deny
        ("GET", "/api/users/42/orders", bearer("not-a-token")),  # 401 invalid_token
        ("GET", "/nowhere", {}),  # unknown route, anonymous
        ("POST", "/internal/orders/o-1/reserve", {}),  # anonymous deny
    ]
    answers = []
    for method, path, headers in cases:
        values = {name: (value,) for name, value in headers.items()}
        plain = GatewayRequest(method, path, values, peer=CHECKOUT if not headers else None)
        answers.append(check(BUNDLE, plain, CountingLookup(), tokens))
    return answers


def test_metadata_and_bodies_are_what_the_general_encoders_write() -> None:
    statuses = set()
    for answer in _responses():
        statuses.add(answer.http_status)
        message = envoy.check_response(answer)
        reference = struct_pb2.Struct()
        reference.update(answer.metadata)
        assert message.dynamic_metadata == reference
        if not answer.allowed:
            body = {"error": answer.result.error, "decision_id": answer.result.decision_id}
            assert answer.body == json.dumps(body)
    assert statuses == {200, 401, 403, 404}


def test_struct_writer_handles_every_json_value() -> None:
    values = {"s": "é\n", "l": ["a", "b"], "e": [], "n": 3, "f": 1.5, "b": False, "z": None}
    values["mixed"] = ["a", 1, {"k": [True]}]
    values["d"] = {"x": {"y": "z"}}
    written, reference = struct_pb2.Struct(), struct_pb2.Struct()
    envoy._set_struct(written, values)
    reference.update(values)
    assert written == reference
