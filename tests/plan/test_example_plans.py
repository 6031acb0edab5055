"""GET /api/orders in the example bundle: each role's plan in full, its SQL, and its rows.

The SQL strings here are the ones docs/plans.md shows; the rows are the
bundle's own orders, run through SQLite and compared with IsAuthorized order by order.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from pdp import engine
from pdp.bundle import load_bundle
from pdp.errors import RequestError
from pdp.model import AuthzRequest, EntityRef
from pdp.plan import PlanKind, PlanRequest, plan_resources
from pdp.plan.api import plan_resources_json
from pdp.plan.predicate import to_predicate
from pdp.plan.sqlalchemy import Attribute, ResourceMapping, to_filter
from tests.support.paths import EXAMPLE_BUNDLE

BUNDLE = load_bundle(EXAMPLE_BUNDLE)
LIST = EntityRef("Action", "listOrders")
metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner_id", sa.Text),
    sa.Column("tenant_id", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("total_cents", sa.BigInteger),
)
MAPPING = ResourceMapping(
    id=orders.c.id,
    attributes={
        "owner": Attribute(orders.c.owner_id, "User"),
        "tenant": Attribute(orders.c.tenant_id, "Tenant"),
        "status": orders.c.status,
        "total_cents": orders.c.total_cents,
    },
    parents={"Tenant": orders.c.tenant_id},
)


def _entity(type_: str, id_: str) -> dict[str, Any]:
    return {"__entity": {"type": type_, "id": id_}}


SAM_SEES = [_entity("Role", "support"), _entity("Tenant", "acme"), _entity("User", "support-sam")]
PLANS: dict[str, tuple[PlanKind, dict[str, Any], tuple[str, ...], str]] = {
    'User::"42"': (
        PlanKind.CONDITIONAL,
        {"op": "==", "args": [{"attr": ["owner"]}, {"value": _entity("User", "42")}]},
        ("customer-lists-own-orders",),
        "orders.owner_id = '42'",
    ),
    'User::"support-sam"': (
        PlanKind.CONDITIONAL,
        {
            "op": "or",
            "args": [
                {
                    "op": "==",
                    "args": [{"attr": ["owner"]}, {"value": _entity("User", "support-sam")}],
                },
                {"op": "contains", "args": [{"value": SAM_SEES}, {"attr": ["tenant"]}]},
                {
                    "op": "and",
                    "args": [
                        {"op": "kind", "args": [{"attr": ["tenant"]}], "kind": "EntitySet"},
                        {"op": "containsAny", "args": [{"attr": ["tenant"]}, {"value": SAM_SEES}]},
                    ],
                },
            ],
        },
        ("customer-lists-own-orders", "support-lists-tenant-orders"),
        "orders.owner_id = 'support-sam' OR orders.tenant_id IN ('acme')",
    ),
    'User::"admin-ada"': (
        PlanKind.ALWAYS_ALLOWED,
        {"value": True},
        ("customer-lists-own-orders", "admin-lists-all-orders"),
        "true",
    ),
    'Anonymous::"anonymous"': (
        PlanKind.ALWAYS_DENIED,
        {"value": False},
        ("anonymous-denied",),
        "false",
    ),
    'Service::"spiffe://cluster.local/ns/shop/sa/checkout"': (
        PlanKind.ALWAYS_DENIED,
        {"value": False},
        (),
        "false",
    ),
}


def _orders() -> list[dict[str, Any]]:
    return [
        e
        for e in json.loads((EXAMPLE_BUNDLE / "entities.json").read_text())
        if e["uid"]["type"] == "Order"
    ]


@pytest.mark.parametrize("principal", PLANS)
def test_each_role_gets_its_plan_in_full(principal: str) -> None:
    kind, condition, policies, sql = PLANS[principal]
    plan = plan_resources(BUNDLE, PlanRequest(EntityRef.parse(principal), LIST, "Order"))
    assert (plan.kind, plan.condition, plan.policies, plan.unsupported) == (
        kind,
        condition,
        policies,
        (),
    )
    assert plan.resource_type == "Order" and plan.bundle_revision == BUNDLE.revision
    rendered = to_filter(plan, MAPPING).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    assert str(rendered) == sql


@pytest.mark.parametrize("principal", PLANS)
def test_each_role_sees_exactly_what_is_authorized_allows(principal: str) -> None:
    """The bundle's orders as rows: SQLite and the predicate against engine.decide per order."""
    plan = plan_resources(BUNDLE, PlanRequest(EntityRef.parse(principal), LIST, "Order"))
    rows = _orders()
    allowed = {
        row["uid"]["id"]
        for row in rows
        if engine.decide(
            BUNDLE,
            AuthzRequest(EntityRef.parse(principal), LIST, EntityRef("Order", row["uid"]["id"])),
        ).allowed
    }
    sqlite = sa.create_engine("sqlite://")
    with sqlite.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            orders.insert(),
            [
                {
                    "id": r["uid"]["id"],
                    "owner_id": r["attrs"]["owner"]["__entity"]["id"],
                    "tenant_id": r["attrs"]["tenant"]["__entity"]["id"],
                    "status": r["attrs"]["status"],
                    "total_cents": r["attrs"]["total_cents"],
                }
                for r in rows
            ],
        )
        where = to_filter(plan, MAPPING)
        selected = {row[0] for row in connection.execute(sa.select(orders.c.id).where(where))}
    assert selected == allowed
    predicate = to_predicate(plan, id_key="id", parents_key="parents")
    in_memory = {
        r["uid"]["id"]
        for r in rows
        if predicate({**r["attrs"], "id": r["uid"]["id"], "parents": r["parents"]})
    }
    assert in_memory == allowed
    assert allowed == SEES[principal]


SEES = {  # from entities.json, for the reader: who sees which orders
    'User::"42"': {"o-1001", "o-1002"},
    'User::"support-sam"': {"o-1001", "o-1002", "o-1003"},
    'User::"admin-ada"': {"o-1001", "o-1002", "o-1003", "o-2001"},
    'Anonymous::"anonymous"': set(),
    'Service::"spiffe://cluster.local/ns/shop/sa/checkout"': set(),
}


def test_the_json_seam_for_an_http_edge() -> None:
    body = {
        "principal": {"type": "User", "id": "42"},
        "action": {"type": "Action", "id": "listOrders"},
        "resource_type": "Order",
        "context": {"method": "GET"},
    }
    answer = plan_resources_json(BUNDLE, body)
    assert answer["kind"] == "CONDITIONAL" and answer["policies"] == ["customer-lists-own-orders"]
    assert answer["condition"] == PLANS['User::"42"'][1]
    assert json.loads(json.dumps(answer)) == answer  # plain JSON, nothing else
    for bad, field in [
        ({**body, "resource_type": 5}, "resource_type"),
        ({**body, "principal": "User::42"}, "principal"),
        ({**body, "context": [1]}, "context"),
        ({**body, "context_json": "{}"}, "context_json"),
        ({**body, "resource": {"type": "Order", "id": "o"}}, "resource"),
        ({**body, "resource_type": "Nope"}, "resource_type"),
        ({**body, "context": {"method": 1}}, "context"),
        ({**body, "entities": {}}, "entities"),
    ]:
        with pytest.raises(RequestError) as refused:
            plan_resources_json(BUNDLE, bad)
        assert refused.value.field == field, (bad, refused.value)
