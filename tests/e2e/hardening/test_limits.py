"""Request limits through a real server: each named in its error, checked before the work."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from google.protobuf import json_format, struct_pb2

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.gateway import check_request, metadata_of
from tests.support.hardening import (
    TIMEOUT,
    allowed_request,
    assert_alive_and_serving,
    guarded_bundle,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("limits")

ALLOW, DENY = pb.DECISION_ALLOW, pb.DECISION_DENY


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    bundle = guarded_bundle(tmp_path_factory.mktemp("limits") / "bundle")
    with ServerProcess(bundle, "--decision-log", "off") as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizerStub]:
    assert server.address is not None
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.AuthorizerStub(channel)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def nested(depth: int) -> Any:
    """A value `depth` objects deep: {"a": {"a": ... {}}}."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def deep_struct(depth: int) -> struct_pb2.Struct:
    """{"x": {"x": ... }} built by hand (json_format refuses to build it past 100 levels)."""
    top = struct_pb2.Struct()
    inner = top
    for _ in range(depth):
        inner = inner.fields["x"].struct_value
    inner.fields["ok"].bool_value = True
    return top


def entities(count: int, parents: Any = lambda i: []) -> list[dict[str, Any]]:
    return [
        {"uid": {"type": "G", "id": f"g{i}"}, "attrs": {}, "parents": parents(i)}
        for i in range(count)
    ]


def chain(length: int) -> list[dict[str, Any]]:
    """G::"g0" in G::"g1" in ... : Cedar's transitive closure of it grows as length squared."""
    return entities(length, lambda i: [{"type": "G", "id": f"g{i + 1}"}] if i + 1 < length else [])


def layered(layers: int, width: int) -> list[dict[str, Any]]:
    """Every entity of a layer is a member of every entity of the next one."""
    return [
        {
            "uid": {"type": "G", "id": f"l{layer}n{i}"},
            "attrs": {},
            "parents": [{"type": "G", "id": f"l{layer + 1}n{j}"} for j in range(width)]
            if layer + 1 < layers
            else [],
        }
        for layer in range(layers)
        for i in range(width)
    ]


def proto_entities(count: int) -> list[pb.Entity]:
    return [pb.Entity(uid=pb.EntityUid(type="G", id=f"g{i}")) for i in range(count)]


OVER: dict[str, tuple[dict[str, Any], str, str]] = {  # name -> (fields, field named, flag)
    "long principal id": (
        {"principal": pb.EntityUid(type="User", id="a" * 1025)},
        "principal.id",
        "--max-id-length",
    ),
    "long resource type": (
        {"resource": pb.EntityUid(type="D" * 1025, id="d1")},
        "resource.type",
        "--max-id-length",
    ),
    "deep context": (
        {"context": struct({"ok": True, "x": nested(32)})},
        "context.x.a",
        "--max-depth",
    ),
    "deep context_json": (
        {"context_json": json.dumps({"ok": True, "x": nested(32)})},
        "context_json.x.a",
        "--max-depth",
    ),
    "very deep context_json": (
        {"context_json": '{"ok": true, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"},
        "context_json",
        "--max-depth",
    ),
    "long context string": (
        {"context_json": json.dumps({"ok": True, "note": "n" * 65537})},
        "context_json.note",
        "--max-string-length",
    ),
    "long context key": (
        {"context": struct({"ok": True, "k" * 65537: 1})},
        "context",
        "--max-string-length",
    ),
    "many context keys": (
        {"context_json": json.dumps({"ok": True, **{f"k{i}": i for i in range(1000)}})},
        "context_json",
        "--max-context-keys",
    ),
    "many entities": ({"entities": proto_entities(1001)}, "entities", "--max-entities"),
    # Named as the field the client set beside it, and still a limit (status and metric agree).
    "many entities beside entities_json": (
        {"entities": proto_entities(1001), "entities_json": "[]"},
        "entities_json",
        "--max-entities",
    ),
    "many entities_json": (
        {"entities_json": json.dumps(entities(1001))},
        "entities_json",
        "--max-entities",
    ),
    "long entity id in entities_json": (
        {"entities_json": json.dumps([{"uid": {"type": "G", "id": "g" * 1025}, "attrs": {}}])},
        "entities_json[0].uid.id",
        "--max-id-length",
    ),
    "long parent id in entities": (
        {
            "entities": [
                pb.Entity(
                    uid=pb.EntityUid(type="G", id="g"),
                    parents=[pb.EntityUid(type="G", id="p" * 1025)],
                )
            ]
        },
        "entities[0].parents[0].id",
        "--max-id-length",
    ),
    "deep entity attrs": (
        {
            "entities": [
                pb.Entity(uid=pb.EntityUid(type="G", id="g"), attrs=struct({"x": nested(32)}))
            ]
        },
        "entities[0].attrs.x.a",
        "--max-depth",
    ),
    "deep attrs in entities_json": (
        {"entities_json": json.dumps([{"uid": {"type": "G", "id": "g"}, "attrs": nested(33)}])},
        "entities_json[0].attrs.a",
        "--max-depth",
    ),
    "very deep entities_json": (  # Python's own JSON parser gives up at about 1,000
        {"entities_json": '[{"uid": {"type": "G", "id": "g"}, "attrs": {"a": ' + "[" * 5000},
        "entities_json",
        "--max-depth",
    ),
    "a long chain of groups": (
        {"entities_json": json.dumps(chain(150))},
        "entities_json",
        "--max-ancestors",
    ),
    "layers of groups": (
        {"entities_json": json.dumps(layered(10, 40))},
        "entities_json",
        "--max-ancestors",
    ),
}


@pytest.mark.parametrize("name", list(OVER))
def test_over_a_limit_is_resource_exhausted_naming_the_field_and_the_limit(
    name: str, stub: pb_grpc.AuthorizerStub
) -> None:
    fields, field, flag = OVER[name]
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub.IsAuthorized(allowed_request(**fields), timeout=TIMEOUT)
    assert time.monotonic() - started < 2.0  # refused before the work, not after it
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    details = caught.value.details()
    assert details.startswith(f"{field}"), details
    assert "is over the limit of" in details and f"({flag})" in details


AT_LIMIT: dict[str, dict[str, Any]] = {
    "id of 1024 characters": {"resource": pb.EntityUid(type="Doc", id="d" * 1024)},
    "context 32 objects deep": {"context_json": json.dumps({"ok": True, "x": nested(31)})},
    "context Struct 32 deep": {"context": struct({"ok": True, "x": nested(31)})},
    "1000 context keys": {
        "context_json": json.dumps({"ok": True, **{f"k{i}": i for i in range(999)}})
    },
    "1000 entities": {"entities_json": json.dumps(entities(1000))},
    "a chain of 100 groups": {"entities_json": json.dumps(chain(100))},
    "a string of 65536 characters": {"context_json": json.dumps({"ok": True, "n": "n" * 65536})},
}


@pytest.mark.parametrize("name", list(AT_LIMIT))
def test_at_a_limit_the_request_is_decided(name: str, stub: pb_grpc.AuthorizerStub) -> None:
    response = stub.IsAuthorized(allowed_request(**AT_LIMIT[name]), timeout=TIMEOUT)
    expected = DENY if "resource" in AT_LIMIT[name] else ALLOW
    assert response.decision == expected, response


def test_a_hierarchy_bomb_is_refused_at_once_and_the_server_keeps_answering(
    server: ServerProcess, stub: pb_grpc.AuthorizerStub
) -> None:
    # 1,000 entities of 10 layers, each in all 100 of the next: Cedar's transitive closure of
    # this 2.7 MB list took over 30 seconds of one core before the limit existed.
    bomb = json.dumps(layered(10, 100))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub.IsAuthorized(allowed_request(entities_json=bomb), timeout=TIMEOUT)
    assert time.monotonic() - started < 2.0
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-ancestors" in caught.value.details()
    assert stub.IsAuthorized(allowed_request(), timeout=TIMEOUT).decision == ALLOW
    assert_alive_and_serving(server)


def test_a_batch_over_its_size_or_with_shared_entities_over_a_limit_fails_as_a_whole(
    stub: pb_grpc.AuthorizerStub,
) -> None:
    too_many = pb.BatchIsAuthorizedRequest(requests=[allowed_request()] * 1001)
    with pytest.raises(grpc.RpcError) as caught:
        stub.BatchIsAuthorized(too_many, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details() == "requests: 1001 items is over the batch limit of 1000"
    shared = pb.BatchIsAuthorizedRequest(
        requests=[allowed_request()], entities_json=json.dumps(entities(1001))
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.BatchIsAuthorized(shared, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details().startswith("entities_json: 1001 entities")


def test_a_batch_item_over_a_limit_is_denied_and_the_others_are_decided(
    stub: pb_grpc.AuthorizerStub,
) -> None:
    # Shared entities a chain of 60 (1,770 pairs), an item's own a chain of 100 on top of it:
    # within the limit alone, over it together.
    shared = chain(60)
    own = [
        {"uid": {"type": "H", "id": f"h{i}"}, "attrs": {}, "parents": [{"type": "G", "id": "g0"}]}
        for i in range(200)
    ]
    batch = pb.BatchIsAuthorizedRequest(
        requests=[
            allowed_request(),
            allowed_request(principal=pb.EntityUid(type="User", id="a" * 2000)),
            allowed_request(entities_json=json.dumps(own)),
            allowed_request(context_json='{"ok": true, "x": ' + "[" * 50 + "]" * 50 + "}"),
            allowed_request(),
        ],
        entities_json=json.dumps(shared),
    )
    results = stub.BatchIsAuthorized(batch, timeout=TIMEOUT).results
    assert [r.decision for r in results] == [ALLOW, DENY, DENY, DENY, ALLOW]
    assert "requests[1].principal.id: 2000 characters" in results[1].errors[0]
    assert "(--max-ancestors)" in results[2].errors[0]
    assert results[2].errors[0].startswith("invalid request: requests[2].entities_json")
    assert "requests[3].context_json" in results[3].errors[0]
    assert "(--max-depth)" in results[3].errors[0]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ext_grpc.AuthorizationStub]:
    folder = tmp_path_factory.mktemp("gateway")
    with (
        ServerProcess(EXAMPLE_BUNDLE, "--decision-log", "off", listen=f"unix:{folder}/s") as srv,
        grpc.insecure_channel(srv.address or "") as channel,
    ):
        yield ext_grpc.AuthorizationStub(channel)


CHECK_OVER: dict[str, tuple[Any, int, str]] = {  # name -> (request, HTTP status, flag)
    "long path": (check_request("GET", "/api/orders/" + "o" * 8200), 414, "--max-path-bytes"),
    "long query": (  # fewer characters than the limit, more bytes
        check_request("GET", "/api/orders/o-1?q=" + "é" * 4100),
        414,
        "--max-path-bytes",
    ),
    "many headers": (
        check_request("GET", "/api/orders/o-1", {f"x-h{i}": "v" for i in range(200)}),
        431,
        "--max-headers",
    ),
    "many header_map entries": (
        check_request("GET", "/api/orders/o-1", header_map=[("x-h", "v")] * 201),
        431,
        "--max-headers",
    ),
    "large headers": (
        check_request("GET", "/api/orders/o-1", {"cookie": "c" * 70000}),
        431,
        "--max-header-bytes",
    ),
}


@pytest.mark.parametrize("name", list(CHECK_OVER))
def test_a_check_over_a_limit_is_a_deny_with_its_http_status(
    name: str, gateway: ext_grpc.AuthorizationStub
) -> None:
    message, status, flag = CHECK_OVER[name]
    response = gateway.Check(message, timeout=TIMEOUT)
    assert response.status.code == 7  # PERMISSION_DENIED: never OK
    assert response.denied_response.status.code == status
    body = json.loads(response.denied_response.body)
    assert body["error"] == "invalid_request" and body["decision_id"]
    assert metadata_of(response)["reason"] == "limit_exceeded"
    assert flag not in response.denied_response.body  # the client learns no details


def test_a_struct_deeper_than_protobuf_parses_is_refused_and_the_server_carries_on(
    server: ServerProcess, stub: pb_grpc.AuthorizerStub
) -> None:
    # Past ~33 levels a Struct is over protobuf's nesting limit (100 messages): gRPC itself
    # fails to parse the request (UNKNOWN "...DecodeError..."), before pdp sees it.
    with pytest.raises(grpc.RpcError) as caught:
        stub.IsAuthorized(allowed_request(context=deep_struct(60)), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert "DecodeError" in (caught.value.details() or "")
    assert stub.IsAuthorized(allowed_request(), timeout=TIMEOUT).decision == ALLOW
    assert_alive_and_serving(server)
