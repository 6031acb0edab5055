"""BatchIsAuthorized through a real `pdp serve --max-batch 5`: order, entities, bad items."""

from __future__ import annotations

import json

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from tests.e2e.server.conftest import MAX_BATCH
from tests.support.grpc_calls import ALLOW, DENY, TIMEOUT, entity, request, rpc_error, summary
from tests.support.server_bundles import PLAIN_REVISION

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("batch")

EDITORS = [{"type": "Role", "id": "editors"}]
CAROL = {"uid": {"type": "User", "id": "carol"}, "attrs": {}, "parents": EDITORS}
DUPLICATE = (
    'duplicate entity entry `User::"carol"` '
    "(request entities may add to the bundle's entities, never change them)"
)


def batch(stub, *items: pb.IsAuthorizedRequest, **fields) -> list[pb.IsAuthorizedResponse]:
    message = pb.BatchIsAuthorizedRequest(requests=items, **fields)
    return list(stub.BatchIsAuthorized(message, timeout=TIMEOUT).results)


def test_results_come_in_request_order(authorizer) -> None:
    results = batch(
        authorizer,
        request("User::bob"),
        request(),
        request("User::admin", "Action::delete"),
        request(context_json={"risk": 95}),
        request(action="Action::edit"),
    )
    assert [summary(r)[:2] for r in results] == [
        (DENY, []),
        (ALLOW, ["owner-read"]),
        (ALLOW, ["policies.cedar#1"]),
        (DENY, ["forbid-risky"]),
        (ALLOW, ["sub/write.cedar#0"]),
    ]
    assert {r.bundle_revision for r in results} == {PLAIN_REVISION}
    assert len({r.decision_id for r in results}) == len(results)


@pytest.mark.parametrize("shared_form", ["entities", "entities_json"])
def test_shared_entities_and_per_item_entities(authorizer, shared_form) -> None:
    shared: dict = {"entities_json": json.dumps([CAROL])}
    if shared_form == "entities":
        shared = {"entities": [entity("User::carol", parents=("Role::editors",))]}
    dave = entity("User::dave", parents=("Role::editors",))
    other_carol = entity("User::carol", {"x": 1})
    results = batch(
        authorizer,
        request("User::carol", "Action::edit"),
        request("User::dave", "Action::edit", entities=[dave]),
        request("User::dave", "Action::edit"),
        request("User::carol", "Action::edit", entities=[other_carol]),
        request("User::carol", "Action::edit", entities_json=[CAROL]),
        **shared,
    )
    edit_allowed = (ALLOW, ["sub/write.cedar#0"], [], [])
    assert [summary(r) for r in results] == [
        edit_allowed,
        edit_allowed,
        (DENY, [], [], []),
        (DENY, [], [], [f"invalid request: requests[3].entities: {DUPLICATE}"]),
        edit_allowed,  # an identical duplicate of a shared entity is fine
    ]


def test_a_malformed_item_is_a_deny_and_the_others_are_decided(authorizer) -> None:
    no_resource = request()
    no_resource.ClearField("resource")
    results = batch(
        authorizer,
        request("::alice"),
        request(),
        request(context_json={"x": {"__extn": {"fn": "nope", "arg": "1"}}}),
        no_resource,
        request(context={"f": 0.5}),
    )
    assert [summary(r) for r in results] == [
        (DENY, [], [], ["invalid request: requests[0].principal.type: must not be empty"]),
        (ALLOW, ["owner-read"], [], []),
        (
            DENY,
            [],
            [],
            ["invalid request: requests[2].context_json: extension function `nope` does not exist"],
        ),
        (DENY, [], [], ["invalid request: requests[3].resource: is required"]),
        (
            DENY,
            [],
            [],
            [
                "invalid request: requests[4].context.f: 0.5 is not a whole number: Cedar "
                'numbers are 64-bit integers (use {"__extn": {"fn": "decimal", "arg": "..."}} '
                "for fractions)"
            ],
        ),
    ]
    assert all(r.decision_id and r.bundle_revision == PLAIN_REVISION for r in results)


def test_an_item_with_bad_entities_json_is_a_deny(authorizer) -> None:
    results = batch(authorizer, request(entities_json="nope"), request())
    assert summary(results[0]) == (
        DENY,
        [],
        [],
        [
            "invalid request: requests[0].entities: error during entity deserialization: "
            "expected ident at line 1 column 2"
        ],
    )
    assert results[1].decision == ALLOW


def test_an_empty_batch_has_no_results(authorizer) -> None:
    assert batch(authorizer) == []


def test_a_batch_over_the_limit_is_resource_exhausted(authorizer) -> None:
    assert len(batch(authorizer, *[request()] * MAX_BATCH)) == MAX_BATCH
    too_many = pb.BatchIsAuthorizedRequest(requests=[request()] * (MAX_BATCH + 1))
    error = rpc_error(authorizer.BatchIsAuthorized, too_many)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == (
        f"requests: {MAX_BATCH + 1} items is over the batch limit of {MAX_BATCH}"
    )


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"entities_json": "nope"}, "entities_json: error during entity deserialization: "
         "expected ident at line 1 column 2"),
        ({"entities_json": '{"uid": 1}'}, "entities_json: error during entity deserialization: "
         "invalid type: map, expected a sequence"),
        ({"entities": [pb.Entity(uid=pb.EntityUid(id="x"))]}, "entities[0].uid.type: must not "
         "be empty"),
        ({"entities": [entity("User::x", {"n": 0.5})]}, "entities[0].attrs.n: 0.5 is not a "
         "whole number"),
        ({"entities": [entity("User::alice")]}, 'entities: duplicate entity entry `User::"alice"`'),
        ({"entities": [entity("User::x")], "entities_json": "[]"}, "entities_json: set either "
         "entities or entities_json, not both"),
    ],
    ids=["not-json", "not-a-list", "empty-type", "fraction", "changes-bundle", "both"],
)  # fmt: skip
def test_malformed_shared_entities_fail_the_call(authorizer, fields, details) -> None:
    message = pb.BatchIsAuthorizedRequest(requests=[request()], **fields)
    error = rpc_error(authorizer.BatchIsAuthorized, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(details), error.details()


def test_an_oversized_batch_message_is_refused(authorizer) -> None:
    padded = request(context_json={"pad": "x" * 70_000})
    error = rpc_error(authorizer.BatchIsAuthorized, pb.BatchIsAuthorizedRequest(requests=[padded]))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in error.details()
