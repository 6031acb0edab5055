"""PlanResources through a real `pdp serve` on the example bundle: plans, bad input, limits,
decision log lines marked as plans, and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.observability import metrics_address, parse_lines, scrape, value
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import ServerProcess, authorizer_stub

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("plan-resources")

TIMEOUT = 10
TYPE = "resource_type: "
LIST = 'Action::"listOrders"'


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(EXAMPLE_BUNDLE, "--metrics", "127.0.0.1:0", "--max-id-length", "64") as s:
        yield s


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizerStub]:
    assert server.address is not None
    with authorizer_stub(server.address) as stub:
        yield stub


def _ask(principal: str, resource_type: str = "Order", **fields: object) -> pb.PlanResourcesRequest:
    kind, _, ident = principal.partition("::")
    message = pb.PlanResourcesRequest(
        principal=pb.EntityUid(type=kind, id=ident),
        action=pb.EntityUid(type="Action", id="listOrders"),
        resource_type=resource_type,
    )
    for name, item in fields.items():
        if name == "context":
            message.context.update(item)  # type: ignore[arg-type]
        else:
            setattr(message, name, item)
    return message


def test_each_role_gets_its_plan(stub: pb_grpc.AuthorizerStub) -> None:
    dana = stub.PlanResources(_ask("User::42"), timeout=TIMEOUT)
    assert dana.kind == pb.PLAN_KIND_CONDITIONAL
    assert json.loads(dana.condition_json) == {
        "op": "==",
        "args": [{"attr": ["owner"]}, {"value": {"__entity": {"type": "User", "id": "42"}}}],
    }
    assert list(dana.policies) == ["customer-lists-own-orders"]
    assert list(dana.unsupported) == [] and len(dana.decision_id) == 36
    assert dana.bundle_revision.startswith("sha256:")
    sam = stub.PlanResources(_ask("User::support-sam"), timeout=TIMEOUT)
    assert sam.kind == pb.PLAN_KIND_CONDITIONAL
    assert list(sam.policies) == ["customer-lists-own-orders", "support-lists-tenant-orders"]
    ada = stub.PlanResources(_ask("User::admin-ada", context_json='{"method": "GET"}'))
    assert (ada.kind, json.loads(ada.condition_json)) == (
        pb.PLAN_KIND_ALWAYS_ALLOWED,
        {"value": True},
    )
    nobody = stub.PlanResources(_ask("Anonymous::anonymous"), timeout=TIMEOUT)
    assert (nobody.kind, list(nobody.policies)) == (
        pb.PLAN_KIND_ALWAYS_DENIED,
        ["anonymous-denied"],
    )
    token_only = stub.PlanResources(_ask("User::not-in-entities"), timeout=TIMEOUT)
    assert json.loads(token_only.condition_json)["args"][1]["value"]["__entity"]["id"] == (
        "not-in-entities"
    )
    assert len({dana.decision_id, sam.decision_id, ada.decision_id}) == 3


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (_ask("User::42", "Nope"), f"{TYPE}entity type `Nope` is not declared in the schema"),
        (_ask("User::42", "User"), f'{TYPE}action {LIST} does not apply to type `User`'),
        (_ask("User::42", ""), "resource_type: must not be empty"),
        (_ask("User::42", "Order\n"), "resource_type: 'Order\\n' is not an entity type name"),
        (_ask("User::42", context_json="{"), "context_json: "),
        (_ask("User::42", context={"method": 5}), "context: "),
        (_ask("User::42", context={"nope": "x"}), "context: "),
        (_ask("User::42", context={"x": "y"}, context_json="{}"), "context_json: set either"),
        (_ask("Tenant::acme"), "principal: "),
        (pb.PlanResourcesRequest(resource_type="Order"), "principal: is required"),
        (_ask("User::42", entities_json="[{"), "entities_json: "),
    ],
    ids=["unknown-type", "not-applicable", "empty-type", "newline-type", "bad-json",
         "context-type", "context-key", "both-contexts", "principal-type", "no-principal",
         "bad-entities"],
)  # fmt: skip
def test_bad_input_is_invalid_argument_naming_the_field(
    stub: pb_grpc.AuthorizerStub, message: pb.PlanResourcesRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.PlanResources(message, timeout=TIMEOUT)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.value.details().startswith(field), failed.value.details()


def test_an_action_that_does_not_exist(stub: pb_grpc.AuthorizerStub) -> None:
    message = _ask("User::42")
    message.action.id = "dropTables"
    with pytest.raises(grpc.RpcError) as failed:
        stub.PlanResources(message, timeout=TIMEOUT)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        failed.value.details()
        == 'action: action Action::"dropTables" is not declared in the schema'
    )


def test_limits_apply(stub: pb_grpc.AuthorizerStub) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.PlanResources(_ask("User::42", "O" * 65), timeout=TIMEOUT)
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert failed.value.details() == (
        "resource_type: 65 characters is over the limit of 64 (--max-id-length)"
    )


def test_plans_are_logged_and_counted(server: ServerProcess, stub: pb_grpc.AuthorizerStub) -> None:
    before = scrape(metrics_address(server))
    answer = stub.PlanResources(_ask("User::42"), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError):
        stub.PlanResources(_ask("User::42", "Nope"), timeout=TIMEOUT)
    entry = wait_for(
        lambda: next(
            (e for e in parse_lines(server.stdout_lines) if e["decision_id"] == answer.decision_id),
            None,
        ),
        what="the plan's decision log line",
    )
    assert entry["api"] == "PlanResources"
    assert entry["plan"] == {"kind": "CONDITIONAL", "resource_type": "Order", "unsupported": 0}
    assert (entry["decision"], entry["resource"]) == ("conditional", None)
    assert entry["principal"] == 'User::"42"' and entry["action"] == 'Action::"listOrders"'
    assert entry["determining_policies"] == ["customer-lists-own-orders"]
    assert entry["bundle_revision"] == answer.bundle_revision
    after = scrape(metrics_address(server))
    labels = {"api": "PlanResources", "decision": "conditional"}
    assert (
        value(after, "pdp_decisions_total", **labels)
        == value(before, "pdp_decisions_total", **labels) + 1
    )
    errors = {"api": "PlanResources", "code": "INVALID_ARGUMENT"}
    assert value(after, "pdp_request_errors_total", **errors) >= 1
    assert value(after, "pdp_request_duration_seconds_count", api="PlanResources") >= 2
