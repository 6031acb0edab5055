"""IsAuthorized through a real `pdp serve`: decisions, ids, errors, both input forms, bad input."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.grpc_calls import ALLOW, DENY, TIMEOUT, entity, request, rpc_error, summary
from tests.support.server_bundles import BEYOND_DOUBLE, PLAIN_ENTITIES, PLAIN_REVISION

RISK_ERROR = "error while evaluating policy `forbid-risky`: type error: expected long, got string"
HIGH = {"risk": "high"}  # `context.risk > 90` errors on a string
EDITORS = ("Role::editors",)
COUNT = "Action::count"


def decide(stub: pb_grpc.AuthorizerStub, message: pb.IsAuthorizedRequest):
    return stub.IsAuthorized(message, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (request(), (ALLOW, ["owner-read"], [], [])),
        (request("User::bob"), (DENY, [], [], [])),
        (request("User::admin", "Action::delete"), (ALLOW, ["policies.cedar#1"], [], [])),
        (request(action="Action::edit"), (ALLOW, ["sub/write.cedar#0"], [], [])),
        (request(context_json={"risk": 95}), (DENY, ["forbid-risky"], [], [])),
        (request(context_json={"risk": 10}), (ALLOW, ["owner-read"], [], [])),
        # Cedar semantics: a forbid that errors is skipped, so it does not deny.
        (request(context_json=HIGH), (ALLOW, ["owner-read"], ["forbid-risky"], [RISK_ERROR])),
        (request("User::bob", context=HIGH), (DENY, [], ["forbid-risky"], [RISK_ERROR])),
    ],
    ids=["owner", "stranger", "positional-id", "role", "forbid", "no-forbid", "erroring-forbid",
         "erroring-and-deny"],
)  # fmt: skip
def test_decisions_name_bundle_policy_ids(authorizer, message, expected) -> None:
    response = decide(authorizer, message)
    assert summary(response) == expected
    assert response.bundle_revision == PLAIN_REVISION


def test_two_determining_policies(authorizer) -> None:
    own_doc = entity("Doc::d2", {"owner": {"__entity": {"type": "User", "id": "admin"}}})
    response = decide(authorizer, request("User::admin", resource="Doc::d2", entities=[own_doc]))
    assert response.decision == ALLOW
    assert sorted(response.determining_policies) == ["owner-read", "policies.cedar#1"]


def test_every_decision_has_a_fresh_id(authorizer) -> None:
    ids = [decide(authorizer, request()).decision_id for _ in range(5)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 36 for i in ids)


CONTEXTS: list[dict[str, Any]] = [
    {},
    {"risk": 95},
    {"risk": "high"},
    {"risk": -3, "nested": {"list": [1, "two", True]}},
    {"n": BEYOND_DOUBLE - 1},
]


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("action", ["Action::read", "Action::count"])
def test_struct_and_json_context_decide_alike(authorizer, context, action) -> None:
    as_struct = decide(authorizer, request(action=action, context=context))
    as_json = decide(authorizer, request(action=action, context_json=context))
    assert summary(as_struct) == summary(as_json)


def test_struct_and_json_entities_decide_alike(authorizer) -> None:
    editors = [{"type": "Role", "id": "editors"}]
    carol = {"uid": {"type": "User", "id": "carol"}, "attrs": {"n": 1}, "parents": editors}
    as_struct = request(
        "User::carol", "Action::edit", entities=[entity("User::carol", {"n": 1}, EDITORS)]
    )
    as_json = request("User::carol", "Action::edit", entities_json=[carol])
    assert summary(decide(authorizer, as_struct)) == (ALLOW, ["sub/write.cedar#0"], [], [])
    assert summary(decide(authorizer, as_json)) == (ALLOW, ["sub/write.cedar#0"], [], [])


def test_longs_beyond_2_53_are_exact_through_context_json(authorizer) -> None:
    above = decide(authorizer, request(action=COUNT, context_json={"n": BEYOND_DOUBLE + 1}))
    at = decide(authorizer, request(action=COUNT, context_json={"n": BEYOND_DOUBLE}))
    assert summary(above) == (ALLOW, ["sub/write.cedar#1"], [], [])
    assert summary(at) == (DENY, [], [], [])
    text = f'{{"n": {2**63 - 1}}}'  # the largest Long, as raw JSON text
    assert decide(authorizer, request(action=COUNT, context_json=text)).decision == ALLOW


def test_a_struct_number_is_a_double(authorizer) -> None:
    """Why the _json fields exist: 2^53 + 1 rounds to 2^53 on its way through a Struct."""
    rounded = decide(authorizer, request(action=COUNT, context={"n": BEYOND_DOUBLE + 1}))
    assert rounded.decision == DENY


def test_request_entities_add_to_the_bundle(authorizer) -> None:
    carol = entity("User::carol", parents=EDITORS)
    assert decide(authorizer, request("User::carol", "Action::edit")).decision == DENY
    with_carol = decide(authorizer, request("User::carol", "Action::edit", entities=[carol]))
    assert summary(with_carol) == (ALLOW, ["sub/write.cedar#0"], [], [])


@pytest.mark.parametrize("form", ["struct", "json"])
def test_an_identical_copy_of_a_bundle_entity_is_fine(authorizer, form) -> None:
    alice = PLAIN_ENTITIES[0]
    if form == "json":
        message = request(action="Action::edit", entities_json=[alice])
    else:
        copy = entity("User::alice", alice["attrs"], EDITORS)
        message = request(action="Action::edit", entities=[copy])
    assert summary(decide(authorizer, message)) == (ALLOW, ["sub/write.cedar#0"], [], [])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"entities_json": [{**PLAIN_ENTITIES[0], "parents": []}]}, "entities_json"),
        ({"entities": [entity("User::alice", {"name": "Mallory"}, EDITORS)]}, "entities"),
    ],
    ids=["json", "struct"],
)
def test_changing_a_bundle_entity_is_invalid(authorizer, fields, field) -> None:
    error = rpc_error(authorizer.IsAuthorized, request(action="Action::edit", **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        f'{field}: duplicate entity entry `User::"alice"` '
        "(request entities may add to the bundle's entities, never change them)"
    )


def _without(name: str) -> pb.IsAuthorizedRequest:
    message = request()
    message.ClearField(name)
    return message


UNKNOWN_FN = {"x": {"__extn": {"fn": "nope", "arg": "1"}}}


@pytest.mark.parametrize(
    ("message", "details"),
    [
        (_without("principal"), "principal: is required"),
        (_without("action"), "action: is required"),
        (_without("resource"), "resource: is required"),
        (request("::alice"), "principal.type: must not be empty"),
        (request(action="::read"), "action.type: must not be empty"),
        (request(resource="::d1"), "resource.type: must not be empty"),
        (request(context_json=UNKNOWN_FN), "context_json: extension function `nope` does not "
         "exist"),
        (request(context=UNKNOWN_FN), "context: extension function `nope` does not exist"),
        (request(context={"a": {"b": 1.5}}), "context.a.b: 1.5 is not a whole number: Cedar "
         'numbers are 64-bit integers (use {"__extn": {"fn": "decimal", "arg": "..."}} for '
         "fractions)"),
        (request(context={"l": [1, 2.5]}), "context.l[1]: 2.5 is not a whole number"),
        (request(context={"big": 2.0**63}), "context.big: 9.223372036854776e+18 is out of range "
         "for a Cedar Long (64-bit)"),
        (request(context={"a": None}), "context.a: null is not a Cedar value"),
        (request(context={"a": 1}, context_json="{}"), "context_json: set either context or "
         "context_json, not both"),
        (request(context_json='{"a": '), "context_json: EOF while parsing a value"),
        (request(context_json="[1]"), "context_json: expression is not a record: [1]"),
        (request(context_json={"a": 1.5}), "context_json: data did not match any variant"),
        (request(entities_json="not json"), "entities_json: error during entity "
         "deserialization: expected ident at line 1 column 2"),
        (request(entities_json=[{"uid": {"type": "User", "id": "x"}}]), "entities_json: error "
         "during entity deserialization: missing field `attrs`"),
        (request(entities_json="[]", entities=[entity("User::x")]), "entities_json: set either "
         "entities or entities_json, not both"),
        (request(entities=[pb.Entity(uid=pb.EntityUid(id="x"))]), "entities[0].uid.type: must "
         "not be empty"),
        (request(entities=[entity("User::x", parents=("::r",))]), "entities[0].parents[0].type: "
         "must not be empty"),
        (request(entities=[entity("User::x", {"a": 0.5})]), "entities[0].attrs.a: 0.5 is not a "
         "whole number"),
        (request("Bad Type::alice"), "principal: Failed to parse principal as entity Uid"),
    ],
)  # fmt: skip
def test_malformed_requests_are_invalid_argument(authorizer, message, details) -> None:
    error = rpc_error(authorizer.IsAuthorized, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(details), error.details()


def test_an_oversized_message_is_refused(authorizer) -> None:
    padding = json.dumps({"pad": "x" * 100_000})
    error = rpc_error(authorizer.IsAuthorized, request(context_json=padding))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in error.details()
