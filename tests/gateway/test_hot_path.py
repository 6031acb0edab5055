"""The Check path's shortcuts give exactly what the general code gives."""

from __future__ import annotations

import json
import random
import re
from urllib.parse import parse_qsl

import pytest
from google.protobuf import struct_pb2

from pdp.authn.cache import TokenCache
from pdp.bundle import load_bundle
from pdp.errors import PathError
from pdp.gateway.check import check
from pdp.gateway.result import GatewayRequest
from pdp.routes.paths import decoded_segments, normalize
from pdp.routes.spec import IdTemplate
from pdp.server import envoy
from tests.authn.test_token_cache import CountingLookup
from tests.support.gateway import CHECKOUT, bearer, check_request, token
from tests.support.paths import EXAMPLE_BUNDLE

BUNDLE = load_bundle(EXAMPLE_BUNDLE)
PIECES = ["a", "Z", "9", "-", "_", "~", ".", "..", "/", "//", "%2e", "%2E", "%41", "%2f", "%5c"]
PIECES += ["%", "%zz", ";", "\\", "é", "%c3%a9", "%ff", "\x01", "@", ":", "!", "$", "?", "#"]


def _reference(target: str) -> tuple[str, ...] | None:
    """The segments the general decoder gives (None: refused), query and fragment cut."""
    raw, _, query = target.partition("?")
    try:
        parse_qsl(query.partition("#")[0], keep_blank_values=True, errors="strict")
        return tuple(decoded_segments(raw.partition("#")[0]))
    except (PathError, UnicodeDecodeError):
        return None


def test_plain_paths_normalize_as_the_general_decoder_does() -> None:
    rng = random.Random(6)
    targets = ["/", "/a", "/a/", "/a//b", "/.well-known/x", "/a/./b", "/a/../b", "/a.b/c.", "/..a"]
    for _ in range(5000):
        targets.append("/" + "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8))))
    plain = 0
    for target in targets:
        expected = _reference(target)
        try:
            found = normalize(target).segments
        except PathError:
            found = None
        assert found == expected, target
        plain += expected is not None and "/" + "/".join(expected) == target
    assert plain > 100  # the shortcut was taken, many times


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


@pytest.mark.parametrize(
    "template", ["{id}", "order-{id}", "{id}-{n}", "catalog", "{id}{n}", "{nope}", "{}", "{ id }"]
)
def test_id_templates_render_as_the_substitution_does(template: str) -> None:
    params = {"id": "o-1", "n": "7"}
    try:
        expected: str | None = re.sub(
            r"\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: params[m.group(1)], template
        )
    except KeyError:
        expected = None
    try:
        found: str | None = IdTemplate(template).render(params)
    except KeyError:
        found = None
    assert found == expected
