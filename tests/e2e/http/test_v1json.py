"""pdp.v1 as JSON over HTTP: the same answers as gRPC, in proto3 JSON; bad input named, 4xx."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from pdp.v1 import authorizer_pb2 as pb
from tests.support.grpc_calls import TIMEOUT
from tests.support.http import call, log_lines, post
from tests.support.server import ServerProcess, authorizer_stub

OWNER_READS = {
    "principal": {"type": "User", "id": "42"},
    "action": {"type": "Action", "id": "readOrder"},
    "resource": {"type": "Order", "id": "o-1001"},
}
OTHER_READS = {**OWNER_READS, "resource": {"type": "Order", "id": "o-1003"}}


def _grpc(server: ServerProcess, body: dict) -> dict:
    assert server.address is not None
    with authorizer_stub(server.address) as stub:
        response = stub.IsAuthorized(
            json_format.ParseDict(body, pb.IsAuthorizedRequest()), timeout=TIMEOUT
        )
    return json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@pytest.mark.parametrize("body", [OWNER_READS, OTHER_READS], ids=["allow", "deny"])
def test_is_authorized_answers_as_grpc_does_in_proto3_json(
    http_server: ServerProcess, http: str, body: dict
) -> None:
    answer = post(http, "/v1/is_authorized", body)
    assert answer.status == 200, answer.body
    assert answer.header("content-type") == "application/json"
    assert answer.header("cache-control") == "no-store"
    got, expected = answer.json(), _grpc(http_server, body)
    assert got.pop("decision_id") and expected.pop("decision_id")
    assert got == expected
    assert got["decision"] == ("DECISION_ALLOW" if body is OWNER_READS else "DECISION_DENY")


def test_is_authorized_is_logged_as_is_authorized(http_server: ServerProcess, http: str) -> None:
    answer = post(http, "/v1/is_authorized", OWNER_READS)
    line = log_lines(http_server, answer.json()["decision_id"])
    assert line["api"] == "IsAuthorized"
    assert line["decision"] == "allow"
    assert line["resource"] == 'Order::"o-1001"'


def test_camel_case_names_and_json_text_forms_are_accepted(http: str) -> None:
    body = {**OWNER_READS, "contextJson": json.dumps({"method": "GET"})}
    answer = post(http, "/v1/is_authorized", body)
    assert answer.status == 200
    assert answer.json()["decision"] == "DECISION_ALLOW"


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        (
            {"action": OWNER_READS["action"], "resource": OWNER_READS["resource"]},
            400,
            "principal",
            "required",
        ),
        ({**OWNER_READS, "principal": 'User::"42"'}, 400, "principal", "object"),
        ({**OWNER_READS, "principal": {"type": 42, "id": "42"}}, 400, "principal.type", "string"),
        (
            {**OWNER_READS, "principal": {"type": "User", "id": "42", "x": 1}},
            400,
            "principal.x",
            "unknown",
        ),
        ({**OWNER_READS, "surprise": 1}, 400, "surprise", "unknown field"),
        ({**OWNER_READS, "context": {"bogus": 1}}, 400, "context", "should not exist"),
        ({**OWNER_READS, "context": [1]}, 400, "context", "object"),
        ({**OWNER_READS, "context": {}, "context_json": "{}"}, 400, "context_json", "not both"),
        ({**OWNER_READS, "entities": [{"uid": {"type": "User"}}]}, 400, "entities", ""),
        ({**OWNER_READS, "entities_json": "[{"}, 400, "entities_json", ""),
        (
            {**OWNER_READS, "context_json": '{"method": "GET", "method": "POST"}'},
            400,
            "context_json",
            "duplicate key",
        ),
        (
            {
                **OWNER_READS,
                "entities": [
                    {"uid": {"type": "X", "id": str(i)}, "attrs": {}, "parents": []}
                    for i in range(1001)
                ],
            },
            413,
            "entities",
            "--max-entities",
        ),
    ],
    ids=[
        "missing-principal",
        "principal-string",
        "type-number",
        "uid-unknown-key",
        "unknown-field",
        "context-schema",
        "context-list",
        "context-twice",
        "entity-no-id",
        "entities-json-broken",
        "duplicate-key",
        "too-many-entities",
    ],
)
def test_bad_requests_are_4xx_naming_the_field(
    http: str, body: dict, status: int, field: str, words: str
) -> None:
    answer = post(http, "/v1/is_authorized", body)
    assert answer.status == status, answer.body
    found = answer.json()
    assert found["field"] == field, found
    assert found["message"].startswith(f"{field}: ")
    assert words in found["message"]
    assert "decision" not in found


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"),
    [
        (b'{"principal": ', "application/json", 400, "not JSON"),
        (b"", "application/json", 400, "empty"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b'"text"', "application/json", 400, "must be a JSON object"),
        (b"\xff\xfe{}", "application/json", 400, "not UTF-8"),
        (b'{"a": NaN}', "application/json", 400, "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply"),
        (json.dumps(OWNER_READS).encode(), "text/plain", 415, "application/json"),
        (json.dumps(OWNER_READS).encode(), None, 415, "application/json"),
        (
            b'{"principal": {"type": "User", "id": "1"}, "principal": {}}',
            "application/json",
            400,
            "duplicate key",
        ),
    ],
    ids=[
        "truncated",
        "empty",
        "array",
        "string",
        "not-utf8",
        "nan",
        "deep",
        "text-plain",
        "no-type",
        "dup-top",
    ],
)
def test_unreadable_bodies_are_4xx(
    http: str, data: bytes, content_type: str | None, status: int, words: str
) -> None:
    answer = post(http, "/v1/is_authorized", data, content_type=content_type)
    assert answer.status == status, answer.body
    assert words in answer.json()["message"]


def test_a_body_over_the_message_limit_is_413_before_it_is_read(http: str) -> None:
    body = b'{"context_json": "' + b"x" * (4 * 1024 * 1024 + 10) + b'"}'
    answer = post(http, "/v1/is_authorized", body)
    assert answer.status == 413
    assert "--max-message-bytes" in answer.json()["message"]


def test_routes_answer_404_and_405_as_json(http: str) -> None:
    missing = call(http, "GET", "/v1/nope")
    assert missing.status == 404 and "no route" in missing.json()["message"]
    wrong = call(http, "GET", "/v1/is_authorized")
    assert wrong.status == 405 and wrong.header("allow") == "POST"


def test_batch_answers_in_order_with_malformed_items_denied(http: str) -> None:
    body = {
        "requests": [
            OWNER_READS,
            {**OWNER_READS, "principal": {"type": "", "id": "42"}},
            OTHER_READS,
            {**OWNER_READS, "context": {"bogus": 1}},
        ]
    }
    answer = post(http, "/v1/batch_is_authorized", body)
    assert answer.status == 200, answer.body
    results = answer.json()["results"]
    assert [r["decision"] for r in results] == [
        "DECISION_ALLOW",
        "DECISION_DENY",
        "DECISION_DENY",
        "DECISION_DENY",
    ]
    assert results[1]["errors"][0].startswith("invalid request: requests[1].principal.type")
    assert results[3]["errors"][0].startswith("invalid request: requests[3].context")
    assert "context_json" not in results[3]["errors"][0]
    assert len({r["decision_id"] for r in results}) == 4


def test_a_batch_over_max_batch_is_413_naming_requests(http: str) -> None:
    answer = post(http, "/v1/batch_is_authorized", {"requests": [OWNER_READS] * 6})
    assert answer.status == 413
    assert answer.json()["field"] == "requests"


def test_a_batch_item_that_is_not_an_object_is_400(http: str) -> None:
    answer = post(http, "/v1/batch_is_authorized", {"requests": [OWNER_READS, 7]})
    assert answer.status == 400
    assert answer.json()["field"] == "requests[1]"


def test_plan_resources_over_http_is_the_grpc_plan(http_server: ServerProcess, http: str) -> None:
    body = {
        "principal": {"type": "User", "id": "42"},
        "action": {"type": "Action", "id": "listOrders"},
        "resource_type": "Order",
    }
    answer = post(http, "/v1/plan_resources", body)
    assert answer.status == 200, answer.body
    plan = answer.json()
    assert plan["kind"] == "CONDITIONAL"
    assert plan["condition"] == {
        "op": "==",
        "args": [{"attr": ["owner"]}, {"value": {"__entity": {"type": "User", "id": "42"}}}],
    }
    assert plan["policies"] == ["customer-lists-own-orders"]
    assert http_server.address is not None
    with authorizer_stub(http_server.address) as stub:
        grpc_plan = stub.PlanResources(
            json_format.ParseDict(body, pb.PlanResourcesRequest()), timeout=TIMEOUT
        )
    assert json.loads(grpc_plan.condition_json) == plan["condition"]
    assert list(grpc_plan.policies) == plan["policies"]
    line = log_lines(http_server, plan["decision_id"])
    assert line["api"] == "PlanResources"
    assert line["plan"] == {"kind": "CONDITIONAL", "resource_type": "Order", "unsupported": 0}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {
                "principal": {"type": "User", "id": "42"},
                "action": {"type": "Action", "id": "listOrders"},
                "resource_type": "Nope",
            },
            400,
            "resource_type",
        ),
        (
            {
                "principal": {"type": "User", "id": "42"},
                "action": {"type": "Action", "id": "listOrders"},
            },
            400,
            "resource_type",
        ),
        (
            {
                "principal": {"type": "User", "id": "42"},
                "action": {"type": "Action", "id": "listOrders"},
                "resource_type": "Order",
                "extra": 1,
            },
            400,
            "extra",
        ),
        (
            {
                "principal": {"type": "User", "id": "42"},
                "action": {"type": "Action", "id": "listOrders"},
                "resource_type": "O" * 2000,
            },
            413,
            "resource_type",
        ),
    ],
    ids=["unknown-type", "missing-type", "unknown-field", "type-too-long"],
)
def test_bad_plan_requests_are_4xx_naming_the_field(
    http: str, body: dict, status: int, field: str
) -> None:
    answer = post(http, "/v1/plan_resources", body)
    assert answer.status == status, answer.body
    assert answer.json()["field"] == field


def test_health_and_readiness(http: str) -> None:
    assert call(http, "GET", "/healthz").json() == {"status": "ok"}
    ready = call(http, "GET", "/readyz")
    assert ready.status == 200 and ready.json()["status"] == "ready"
    head = call(http, "HEAD", "/readyz")
    assert head.status == 200 and head.body == b""


def test_without_a_bundle_decisions_are_503_and_readyz_is_not_ready(tmp_path) -> None:
    empty = tmp_path / "bundle"
    with ServerProcess(empty, "--wait-for-bundle", "--http-listen", "127.0.0.1:0") as server:
        assert server.http_address is not None
        assert call(server.http_address, "GET", "/healthz").status == 200
        ready = call(server.http_address, "GET", "/readyz")
        assert ready.status == 503 and ready.json()["status"] == "not_ready"
        answer = post(server.http_address, "/v1/is_authorized", OWNER_READS)
        assert answer.status == 503
        assert answer.json()["error"] == "unavailable"
        assert answer.header("retry-after") == "1"


def test_http_and_grpc_share_one_decision_cache(http_server: ServerProcess, http: str) -> None:
    """A question asked over gRPC is answered from the cache over HTTP, and the other way."""
    body = {**OWNER_READS, "resource": {"type": "Order", "id": "o-cache-probe"}}
    first = _grpc(http_server, body)
    answer = post(http, "/v1/is_authorized", body).json()
    again = _grpc(http_server, body)
    lines = [log_lines(http_server, d["decision_id"]) for d in (first, answer, again)]
    assert [line.get("cached", False) for line in lines] == [False, True, True]
    assert len({d.pop("decision_id") for d in (first, answer, again)}) == 3
    assert first == answer == again
