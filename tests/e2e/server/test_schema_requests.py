"""With a schema, context and entities are parsed as Cedar's tooling does; bad requests refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from pdp.bundle import load_bundle
from pdp.live.store import BundleStore
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.grpc_calls import ALLOW, DENY, TIMEOUT, entity, request, rpc_error, summary
from tests.support.server import InProcessServer, authorizer_stub
from tests.support.server_bundles import schema_bundle

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("schema-requests")

GOOD: dict[str, Any] = {
    "ip": "10.1.2.3",
    "delegate": {"type": "User", "id": "alice"},
    "amount": "1.25",
    "at": "2026-01-01",
}
ALLOWED = (ALLOW, ["delegated-read"], [], [])


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pb_grpc.AuthorizerStub]:
    store = BundleStore()
    store.activate(load_bundle(str(schema_bundle(tmp_path_factory.mktemp("schema")))))
    with InProcessServer(store) as server, authorizer_stub(server.address) as authorizer:
        yield authorizer


@pytest.mark.parametrize("form", ["context", "context_json"])
def test_strings_and_records_become_extension_values_and_entity_refs(stub, form) -> None:
    """Without the schema, "10.1.2.3" is a string and `.isInRange` would error."""
    response = stub.IsAuthorized(request("User::bob", **{form: GOOD}), timeout=TIMEOUT)
    assert summary(response) == ALLOWED


@pytest.mark.parametrize(
    "change",
    [
        {"ip": "192.168.0.1"},
        {"delegate": {"type": "User", "id": "bob"}},
        {"amount": "10.50"},
        {"at": "2030-01-01T00:00:01Z"},
    ],
)
def test_each_parsed_value_is_compared_as_its_type(stub, change) -> None:
    response = stub.IsAuthorized(request(context_json={**GOOD, **change}), timeout=TIMEOUT)
    assert summary(response) == (DENY, [], [], [])


def test_request_entities_are_parsed_with_the_schema(stub) -> None:
    carol = entity("User::carol", {"name": "Carol"})
    allowed = stub.IsAuthorized(
        request("User::carol", context_json=GOOD, entities=[carol]), timeout=TIMEOUT
    )
    assert summary(allowed) == ALLOWED
    wrong = entity("User::carol", {"name": 7})
    error = rpc_error(stub.IsAuthorized, request(context_json=GOOD, entities=[wrong]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "entities: entity does not conform to the schema: in attribute `name` on "
        '`User::"carol"`, type mismatch'
    ), error.details()


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"action": "Action::write"}, 'action: action `Action::"write"` does not exist in the '
         "supplied schema"),
        ({"principal": "Service::s"}, 'principal: principal type `Service` is not valid for '
         '`Action::"read"`'),
        ({"resource": "User::alice"}, 'resource: resource type `User` is not valid for '
         '`Action::"read"`'),
        ({"context_json": {**GOOD, "amount": 5}}, "context_json: type error: expected string, "
         "got long"),
        ({"context": {**GOOD, "amount": 5}}, "context: type error: expected string, got long"),
        ({"context_json": {**GOOD, "extra": 1}}, "context_json: while parsing context, record "
         "attribute `extra` should not exist according to the schema"),
        ({"context_json": {"ip": "10.1.2.3"}}, "context_json: while parsing context, expected "
         "the record to have an attribute"),
        ({"context_json": {**GOOD, "ip": "nonsense"}}, "context_json: error while evaluating "
         "`ipaddr` extension function: invalid IP address: nonsense"),
        ({"context_json": {**GOOD, "amount": "1.2.3"}}, "context_json: error while evaluating "
         "`decimal` extension function"),
    ],
    ids=["undeclared-action", "principal-type", "resource-type", "wrong-type-json",
         "wrong-type-struct", "extra-attribute", "missing-attribute", "bad-ip", "bad-decimal"],
)  # fmt: skip
def test_requests_the_schema_rejects_are_invalid_argument(stub, fields, details) -> None:
    fields = {"context_json": GOOD, **fields}
    if "context" in fields:
        del fields["context_json"]
    names = ("principal", "action", "resource")
    positional = {name: fields.pop(name) for name in names if name in fields}
    error = rpc_error(stub.IsAuthorized, request(**positional, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(details), error.details()
