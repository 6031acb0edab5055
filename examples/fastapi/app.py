"""A FastAPI service that asks pdp before it answers: GET /orders/{id} and GET /orders.

The service owns its orders; pdp owns the rules. For one order it sends the order as a
request entity (owner, tenant, status: from its own store, not the bundle's), so the
ownership rule (BOLA) is decided on the data the service is about to return. For the list it
asks for a query plan and filters its store with it.

Who is calling comes from `x-pdp-principal`, which the gateway in front (examples/nginx,
Envoy) sets from a verified token and overwrites on every request: never run this service
where clients can reach it directly.

    PDP_TARGET=127.0.0.1:9191 uvicorn examples.fastapi.app:app     # pdp as a sidecar
    PDP_BUNDLE=policies uvicorn examples.fastapi.app:app           # pdp embedded
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Header, HTTPException

from pdp.client import AuthorizerClient, PdpError, Uid, Unavailable
from pdp.model import EntityRef
from pdp.plan.predicate import to_predicate

# The service's own store (a database in real life); the bundle knows none of these orders.
ORDERS: dict[str, dict[str, Any]] = {
    "o-5001": {"owner": "42", "tenant": "acme", "status": "placed", "total_cents": 1999},
    "o-5002": {"owner": "43", "tenant": "acme", "status": "shipped", "total_cents": 4500},
    "o-5003": {"owner": "42", "tenant": "acme", "status": "delivered", "total_cents": 800},
}


def order_entity(order_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """The order as a Cedar entity (orders.cedarschema's Order)."""
    return {
        "uid": {"type": "Order", "id": order_id},
        "attrs": {
            "owner": {"__entity": {"type": "User", "id": row["owner"]}},
            "tenant": {"__entity": {"type": "Tenant", "id": row["tenant"]}},
            "status": row["status"],
            "total_cents": row["total_cents"],
        },
        "parents": [{"type": "Tenant", "id": row["tenant"]}],
    }


def authorizer() -> Any:
    """The one line that chooses sidecar or embedded; both have the same calls."""
    if os.environ.get("PDP_BUNDLE"):
        from pdp.embedded import Authorizer

        return Authorizer(os.environ["PDP_BUNDLE"])
    return AuthorizerClient(os.environ.get("PDP_TARGET", "127.0.0.1:9191"), timeout=1.0)


def create_app(pdp: Any) -> FastAPI:
    app = FastAPI(title="orders")

    def caller(principal: str | None) -> Uid:
        if not principal:
            raise HTTPException(401, "no authenticated caller")
        try:
            return Uid.parse(principal)
        except ValueError:
            raise HTTPException(401, "unreadable caller") from None

    @app.get("/orders/{order_id}")
    def read_order(order_id: str, x_pdp_principal: str | None = Header(None)) -> dict[str, Any]:
        who = caller(x_pdp_principal)
        row = ORDERS.get(order_id)
        if row is None:
            raise HTTPException(404, "no such order")
        try:
            decision = pdp.is_authorized(
                who,
                "readOrder",
                ("Order", order_id),
                context={"method": "GET", "path": f"/orders/{order_id}"},
                entities=[order_entity(order_id, row)],
            )
        except Unavailable:
            raise HTTPException(503, "authorization is unavailable; try again") from None
        except PdpError:
            raise HTTPException(500, "authorization request failed") from None
        if not decision.allowed:
            raise HTTPException(403, f"forbidden (decision {decision.decision_id})")
        return {"id": order_id, **row}

    @app.get("/orders")
    def list_orders(x_pdp_principal: str | None = Header(None)) -> list[dict[str, Any]]:
        who = caller(x_pdp_principal)
        try:
            plan = pdp.plan_resources(who, "listOrders", "Order", context={"method": "GET"})
        except Unavailable:
            raise HTTPException(503, "authorization is unavailable; try again") from None
        keep = to_predicate(plan, id_key="id", parents_key="parents")
        found = []
        for order_id, row in ORDERS.items():
            entity = order_entity(order_id, row)
            parents = [EntityRef(p["type"], p["id"]) for p in entity["parents"]]
            if keep({**entity["attrs"], "id": order_id, "parents": parents}):
                found.append({"id": order_id, **row})
        return found

    return app


configured = os.environ.get("PDP_TARGET") or os.environ.get("PDP_BUNDLE")
app = create_app(authorizer()) if configured else None  # for uvicorn examples.fastapi.app:app
