"""AuthZEN Authorization API 1.0 over a real `pdp serve --http-listen`: the specification's
own examples, adapted to the example bundle (types and ids made `User::"42"` and
`Order::"o-1001"`). The certification scenario: test_authzen_certification.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.http import EVALUATION, EVALUATIONS, call, log_lines, post
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

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
        EXAMPLE_BUNDLE,
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
