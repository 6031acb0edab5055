"""AuthZEN Authorization API 1.0 over a real `pdp serve --http-listen`.

Two sets: the specification's own examples, adapted to the example bundle (types and ids
made `User::"42"` and `Order::"o-1001"`), and the AuthZEN 1.0 certification scenario
(openid/authzen, certification/authorization-api-1_0-scenario.md) run against its fixture
written as Cedar policies (types `user` and `record`, as the scenario sends them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import call, log_lines, post
from tests.support.server import ServerProcess

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"

# --- the spec's examples on the example bundle ---------------------------------------------

USER_42 = {"type": "User", "id": "42"}


def order(order_id: str) -> dict[str, str]:
    return {"type": "Order", "id": order_id}


def test_spec_evaluation_example(http: str) -> None:
    """Access Evaluation request example: action properties and a context, adapted."""
    body = {
        "subject": USER_42,
        "resource": order("o-1001"),
        "action": {"name": "readOrder", "properties": {"method": "GET"}},
        "context": {"path": "/api/orders/o-1001"},
    }
    answer = post(http, EVALUATION, body)
    assert answer.status == 200, answer.body
    assert answer.header("content-type") == "application/json"
    found = answer.json()
    assert found["decision"] is True
    assert found["context"]["reasons"] == ["customer-read-own-order"]
    assert found["context"]["decision_id"]
    assert found["context"]["bundle_revision"].startswith("sha256:")


def test_evaluation_decision_is_logged(http_server: ServerProcess, http: str) -> None:
    answer = post(
        http,
        EVALUATION,
        {"subject": USER_42, "action": {"name": "readOrder"}, "resource": order("o-1003")},
    )
    found = answer.json()
    assert found["decision"] is False and found["context"]["reasons"] == []
    line = log_lines(http_server, found["context"]["decision_id"])
    assert line["api"] == "AccessEvaluation"
    assert (line["principal"], line["action"], line["resource"]) == (
        'User::"42"',
        'Action::"readOrder"',
        'Order::"o-1003"',
    )


def test_action_properties_conflicting_with_context_are_refused(http: str) -> None:
    body = {
        "subject": USER_42,
        "resource": order("o-1001"),
        "action": {"name": "readOrder", "properties": {"method": "GET"}},
        "context": {"method": "POST"},
    }
    answer = post(http, EVALUATION, body)
    assert answer.status == 400
    assert answer.json()["field"] == "action.properties.method"


def test_spec_evaluations_example_without_defaults(http: str) -> None:
    item = {"subject": USER_42, "action": {"name": "readOrder"}, "context": {"method": "GET"}}
    body = {
        "evaluations": [
            {**item, "resource": order("o-1001")},
            {**item, "resource": order("o-1003")},
            {**item, "resource": order("o-1002")},
        ]
    }
    answer = post(http, EVALUATIONS, body)
    assert answer.status == 200, answer.body
    found = answer.json()
    assert "decision" not in found
    assert [e["decision"] for e in found["evaluations"]] == [True, False, True]


def test_spec_default_values_example(http: str) -> None:
    """Top-level subject, context and action are defaults; the third item overrides action."""
    body = {
        "subject": USER_42,
        "context": {"method": "GET"},
        "action": {"name": "readOrder"},
        "evaluations": [
            {"resource": order("o-1001")},
            {"resource": order("o-1002")},
            {"action": {"name": "cancelOrder"}, "resource": order("o-1003")},
        ],
    }
    found = post(http, EVALUATIONS, body).json()
    assert [e["decision"] for e in found["evaluations"]] == [True, True, False]


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        ("execute_all", [True, False, True]),
        ("deny_on_first_deny", [True, False]),
        ("permit_on_first_permit", [True]),
    ],
)
def test_spec_semantics_example(
    http_server: ServerProcess, http: str, semantic: str, expected: list[bool]
) -> None:
    """The spec's three-document example: read 1 (allowed), 2 (denied), 3 (allowed)."""
    body = {
        "subject": USER_42,
        "action": {"name": "readOrder"},
        "options": {"evaluations_semantic": semantic},
        "evaluations": [
            {"resource": order("o-1001")},
            {"resource": order("o-1003")},
            {"resource": order("o-1002")},
        ],
    }
    found = post(http, EVALUATIONS, body).json()
    assert [e["decision"] for e in found["evaluations"]] == expected
    for index, evaluation in enumerate(found["evaluations"]):
        line = log_lines(http_server, evaluation["context"]["decision_id"])
        assert line["api"] == "AccessEvaluations" and line["batch_index"] == index


def test_unknown_semantic_is_400(http: str) -> None:
    body = {
        "subject": USER_42,
        "action": {"name": "readOrder"},
        "options": {"evaluations_semantic": "any"},
        "evaluations": [{"resource": order("o-1001")}],
    }
    answer = post(http, EVALUATIONS, body)
    assert answer.status == 400
    assert answer.json()["field"] == "options.evaluations_semantic"


def test_evaluations_over_max_batch_are_413(http: str) -> None:
    body = {
        "subject": USER_42,
        "action": {"name": "readOrder"},
        "evaluations": [{"resource": order("o-1001")}] * 6,
    }
    answer = post(http, EVALUATIONS, body)
    assert answer.status == 413 and answer.json()["field"] == "evaluations"


def test_properties_of_a_bundle_entity_must_agree_with_it(http: str) -> None:
    """Request entities may add to the bundle's entities, never change them."""
    body = {
        "subject": {"type": "User", "id": "42", "properties": {"email": "mallory@evil.example"}},
        "action": {"name": "readOrder"},
        "resource": order("o-1003"),
    }
    answer = post(http, EVALUATION, body)
    assert answer.status == 400, answer.body
    assert answer.json()["field"].startswith("subject.properties")


def test_properties_become_attributes_of_a_request_entity(http: str) -> None:
    """An order the bundle does not know, owned by User 42 per its properties: allowed."""
    body = {
        "subject": USER_42,
        "action": {"name": "readOrder"},
        "resource": {
            "type": "Order",
            "id": "o-9001",
            "properties": {
                "owner": {"__entity": {"type": "User", "id": "42"}},
                "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
                "status": "placed",
                "total_cents": 100,
            },
        },
    }
    found = post(http, EVALUATION, body).json()
    assert found["decision"] is True
    body["resource"]["properties"]["owner"] = {"__entity": {"type": "User", "id": "43"}}
    assert post(http, EVALUATION, body).json()["decision"] is False


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"status": None}, "resource.properties.status"),
        ({"total_cents": 1.5}, "resource.properties.total_cents"),
        ({"lines": [{"qty": None}]}, "resource.properties.lines[0].qty"),
    ],
)
def test_values_cedar_has_no_form_for_are_refused_by_name(
    http: str, properties: dict, field: str
) -> None:
    body = {
        "subject": USER_42,
        "action": {"name": "readOrder"},
        "resource": {"type": "Order", "id": "o-9002", "properties": properties},
    }
    answer = post(http, EVALUATION, body)
    assert answer.status == 400
    assert answer.json()["field"] == field


def test_metadata_document(http: str) -> None:
    host = http
    answer = call(http, "GET", "/.well-known/authzen-configuration")
    assert answer.status == 200 and answer.header("content-type") == "application/json"
    assert answer.json() == {
        "policy_decision_point": f"http://{host}",
        "access_evaluation_endpoint": f"http://{host}/access/v1/evaluation",
        "access_evaluations_endpoint": f"http://{host}/access/v1/evaluations",
    }
    spoofed = call(http, "GET", "/.well-known/authzen-configuration", headers={"host": "a/b@c"})
    assert spoofed.status == 400


def test_metadata_with_a_configured_base_url(tmp_path: Path) -> None:
    with ServerProcess(
        Path(__file__).resolve().parents[2] / "policies",
        "--http-listen", "127.0.0.1:0",
        "--authzen-base-url", "https://pdp.example.com/",
    ) as server:  # fmt: skip
        assert server.http_address is not None
        found = call(server.http_address, "GET", "/.well-known/authzen-configuration").json()
    assert found["policy_decision_point"] == "https://pdp.example.com"
    assert found["access_evaluations_endpoint"] == "https://pdp.example.com/access/v1/evaluations"


def test_request_id_is_echoed(http: str) -> None:
    body = {"subject": USER_42, "action": {"name": "readOrder"}, "resource": order("o-1001")}
    answer = post(http, EVALUATION, body, headers={"x-request-id": "bfe9eb29-ab87-4ca3"})
    assert answer.header("x-request-id") == "bfe9eb29-ab87-4ca3"
    assert post(http, EVALUATION, body).header("x-request-id") is None


# --- the certification scenario --------------------------------------------------------------

FIXTURE_POLICIES = """\
@id("users-read-records")
permit (principal is user, action == Action::"read", resource is record);

@id("alice-writes-unarchived")
permit (principal == user::"alice", action == Action::"write", resource is record)
unless { resource has status && resource.status == "archived" };

@id("admins-write")
permit (principal is user, action == Action::"write", resource is record)
when { principal has role && principal.role == "admin" };

@id("alice-soft-deletes")
permit (principal == user::"alice", action == Action::"delete", resource is record)
when { context has soft && context.soft == true };
"""

ALICE = {"type": "user", "id": "alice"}
BOB = {"type": "user", "id": "bob"}
BOB_ADMIN = {**BOB, "properties": {"role": "admin"}}
RECORD_1 = {"type": "record", "id": "record-1"}
RECORD_2_ARCHIVED = {"type": "record", "id": "record-2", "properties": {"status": "archived"}}
READ, WRITE = {"name": "read"}, {"name": "write"}


@pytest.fixture(scope="module")
def fixture_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("authzen-fixture")
    (root / "policies.cedar").write_text(FIXTURE_POLICIES)
    (root / "manifest.yaml").write_text("name: authzen-certification\n")
    with ServerProcess(root, "--http-listen", "127.0.0.1:0") as server:
        assert server.http_address is not None
        yield server.http_address


# (test id, endpoint, request, expected status, expected decision or evaluations' decisions)
CERTIFICATION: list[tuple[str, str, Any, int, Any]] = [
    ("c-2-2-1", EVALUATION, {"subject": ALICE, "action": READ, "resource": RECORD_1}, 200, True),
    ("c-2-2-2", EVALUATION, {"subject": BOB, "action": WRITE, "resource": RECORD_1}, 200, False),
    (
        "c-2-2-3",
        EVALUATION,
        {
            "subject": ALICE,
            "action": READ,
            "resource": RECORD_1,
            "context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"},
        },
        200,
        True,
    ),
    (
        "c-2-2-4",
        EVALUATION,
        {"subject": ALICE, "action": WRITE, "resource": RECORD_2_ARCHIVED},
        200,
        False,
    ),
    (
        "c-2-2-5",
        EVALUATION,
        {"subject": BOB_ADMIN, "action": WRITE, "resource": RECORD_2_ARCHIVED},
        200,
        True,
    ),
    (
        "c-2-2-6",
        EVALUATION,
        {
            "subject": ALICE,
            "action": {"name": "delete", "properties": {"soft": True}},
            "resource": RECORD_1,
        },
        200,
        True,
    ),
    (
        "c-2-2-7",
        EVALUATION,
        {
            "subject": ALICE,
            "action": {"name": "delete", "properties": {"soft": False}},
            "resource": RECORD_1,
        },
        200,
        False,
    ),
    (
        "c-2-2-8",
        EVALUATION,
        {
            "subject": {**ALICE, "properties": {"department": "Sales", "role": "manager"}},
            "action": {"name": "read", "properties": {"method": "GET"}},
            "resource": {**RECORD_1, "properties": {"status": "active", "owner": "bob"}},
        },
        200,
        True,
    ),
    (
        "c-2-2-9",
        EVALUATION,
        {
            "subject": ALICE,
            "action": READ,
            "resource": RECORD_1,
            "foo": "bar",
            "futureField": {"nested": True},
        },
        200,
        True,
    ),
    ("c-2-4-1 subject", EVALUATION, {"action": READ, "resource": RECORD_1}, 400, None),
    ("c-2-4-1 action", EVALUATION, {"subject": ALICE, "resource": RECORD_1}, 400, None),
    ("c-2-4-1 resource", EVALUATION, {"subject": ALICE, "action": READ}, 400, None),
    (
        "c-2-4-2 subject.type",
        EVALUATION,
        {"subject": {"id": "alice"}, "action": READ, "resource": RECORD_1},
        400,
        None,
    ),
    (
        "c-2-4-2 subject.id",
        EVALUATION,
        {"subject": {"type": "user"}, "action": READ, "resource": RECORD_1},
        400,
        None,
    ),
    (
        "c-2-4-2 action.name",
        EVALUATION,
        {"subject": ALICE, "action": {}, "resource": RECORD_1},
        400,
        None,
    ),
    (
        "c-2-4-2 resource.type",
        EVALUATION,
        {"subject": ALICE, "action": READ, "resource": {"id": "record-1"}},
        400,
        None,
    ),
    (
        "c-2-4-2 resource.id",
        EVALUATION,
        {"subject": ALICE, "action": READ, "resource": {"type": "record"}},
        400,
        None,
    ),
    (
        "c-2-4-6 subject string",
        EVALUATION,
        {"subject": "alice", "action": READ, "resource": RECORD_1},
        400,
        None,
    ),
    (
        "c-2-4-6 action.name number",
        EVALUATION,
        {"subject": ALICE, "action": {"name": 123}, "resource": RECORD_1},
        400,
        None,
    ),
    (
        "c-3-2-1",
        EVALUATIONS,
        {
            "subject": ALICE,
            "action": READ,
            "evaluations": [
                {"resource": RECORD_1},
                {"resource": {"type": "record", "id": "record-2"}},
            ],
        },
        200,
        [True, True],
    ),
    (
        "c-3-2-2",
        EVALUATIONS,
        {
            "subject": BOB,
            "resource": RECORD_1,
            "evaluations": [{"action": READ}, {"action": WRITE}],
        },
        200,
        [True, False],
    ),
    (
        "c-3-2-3",
        EVALUATIONS,
        {
            "subject": ALICE,
            "action": WRITE,
            "evaluations": [
                {"resource": {**RECORD_1, "properties": {"status": "active"}}},
                {"resource": RECORD_2_ARCHIVED},
            ],
        },
        200,
        [True, False],
    ),
    (
        "c-3-2-4",
        EVALUATIONS,
        {
            "action": WRITE,
            "resource": RECORD_2_ARCHIVED,
            "evaluations": [{"subject": ALICE}, {"subject": BOB_ADMIN}],
        },
        200,
        [False, True],
    ),
    (
        "c-3-2-5",
        EVALUATIONS,
        {
            "evaluations": [
                {"subject": ALICE, "action": READ, "resource": RECORD_1},
                {"subject": BOB, "action": WRITE, "resource": RECORD_1},
            ]
        },
        200,
        [True, False],
    ),
    (
        "c-3-2-6",
        EVALUATIONS,
        {
            "subject": ALICE,
            "action": READ,
            "context": {"time": "2025-06-27T18:03-07:00"},
            "evaluations": [
                {"resource": RECORD_1},
                {
                    "resource": {"type": "record", "id": "record-2"},
                    "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"},
                },
            ],
        },
        200,
        [True, True],
    ),
    (
        "c-3-2-7",
        EVALUATIONS,
        {
            "subject": ALICE,
            "action": WRITE,
            "resource": {**RECORD_1, "properties": {"status": "active"}},
            "evaluations": [{}, {"resource": RECORD_2_ARCHIVED}],
        },
        200,
        [True, False],
    ),
    (
        "c-3-4-1",
        EVALUATIONS,
        {
            "subject": ALICE,
            "action": READ,
            "options": {"evaluations_semantic": "execute_all"},
            "evaluations": [{"resource": RECORD_1}, {}],
        },
        200,
        [True, False],
    ),
    ("c-3-4-2", EVALUATIONS, {"subject": ALICE, "action": READ, "resource": RECORD_1}, 200, True),
    (
        "c-3-4-3",
        EVALUATIONS,
        {"subject": ALICE, "action": READ, "resource": RECORD_1, "evaluations": []},
        200,
        True,
    ),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "expected"),
    [case[1:] for case in CERTIFICATION],
    ids=[case[0] for case in CERTIFICATION],
)
def test_certification_scenario(
    fixture_http: str, endpoint: str, body: Any, status: int, expected: Any
) -> None:
    answer = post(fixture_http, endpoint, body)
    assert answer.status == status, answer.body
    assert answer.header("content-type") == "application/json"
    found = answer.json()
    if status != 200:
        assert found["message"]  # an error message, naming the field
        return
    if isinstance(expected, bool):
        assert found["decision"] is expected
        assert isinstance(found.get("context", {}), dict)
    else:
        assert "decision" not in found
        assert [e["decision"] for e in found["evaluations"]] == expected
        assert all(isinstance(e["decision"], bool) for e in found["evaluations"])


def test_certification_per_item_failure_names_the_field(fixture_http: str) -> None:
    body = {"subject": ALICE, "action": READ, "evaluations": [{"resource": RECORD_1}, {}, "x"]}
    found = post(fixture_http, EVALUATIONS, body).json()["evaluations"]
    assert found[1] == {
        "decision": False,
        "context": {
            "decision_id": found[1]["context"]["decision_id"],
            "bundle_revision": found[1]["context"]["bundle_revision"],
            "reasons": [],
            "error": {"status": 400, "message": "evaluations[1].resource: is required"},
        },
    }
    assert found[2]["context"]["error"]["message"] == "evaluations[2]: must be a JSON object"


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", json.dumps({"subject": ALICE, "action": READ, "resource": RECORD_1})),
        ("application/json", "{not json"),
        ("application/json", ""),
    ],
    ids=["c-2-4-3 content type", "c-2-4-4 malformed", "c-2-4-5 empty"],
)
def test_certification_transport_errors_are_400(
    fixture_http: str, content_type: str, data: str
) -> None:
    answer = post(fixture_http, EVALUATION, data, content_type=content_type)
    assert answer.status == 400


def test_certification_idempotency(fixture_http: str) -> None:
    body = {"subject": ALICE, "action": READ, "resource": RECORD_1}
    assert {post(fixture_http, EVALUATION, body).json()["decision"] for _ in range(5)} == {True}


def test_short_circuit_stops_deciding(fixture_http: str) -> None:
    """deny_on_first_deny decides nothing after the first deny; a malformed item is a deny."""
    body = {
        "subject": ALICE,
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [
            {"action": READ, "resource": RECORD_1},
            {"action": READ},
            {"action": READ, "resource": RECORD_1},
        ],
    }
    found = post(fixture_http, EVALUATIONS, body).json()["evaluations"]
    assert [e["decision"] for e in found] == [True, False]
    body["options"] = {"evaluations_semantic": "permit_on_first_permit"}
    body["evaluations"] = [{"subject": BOB, "action": WRITE, "resource": RECORD_1}] + body[
        "evaluations"
    ]
    found = post(fixture_http, EVALUATIONS, body).json()["evaluations"]
    assert [e["decision"] for e in found] == [False, True]
