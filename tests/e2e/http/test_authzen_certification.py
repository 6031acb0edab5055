"""The AuthZEN 1.0 certification scenario over a real `pdp serve --http-listen`
(openid/authzen, certification/authorization-api-1_0-scenario.md), run against its fixture
written as Cedar policies (types `user` and `record`, as the scenario sends them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.http import EVALUATION, EVALUATIONS, post
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("authzen-certification")

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
