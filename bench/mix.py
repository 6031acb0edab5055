"""Request mixes: many distinct principal/resource pairs, as pdp, cedarpy and peers see them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from bench import bundles
from pdp.v1 import authorizer_pb2 as pb

Uid = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Call:
    """One authorization question, with what every system under test needs to answer it."""

    principal: Uid
    action: str
    resource: Uid
    entities: tuple[dict[str, Any], ...] = ()  # carried in the request; empty: bundle's only
    context: dict[str, Any] | None = None
    roles: tuple[str, ...] = ()  # the principal's roles, for peers without an entity store
    tenant: str = ""  # the principal's tenant, for peers
    owner: str = ""  # the resource's owner (orders), for peers
    resource_tenant: str = ""  # the resource's tenant, for peers
    expect: bool | None = None  # the decision the policies call for, when the model knows it
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def cedar(self) -> dict[str, Any]:
        """The cedarpy request dict."""
        request: dict[str, Any] = {
            "principal": {"type": self.principal[0], "id": self.principal[1]},
            "action": {"type": "Action", "id": self.action},
            "resource": {"type": self.resource[0], "id": self.resource[1]},
        }
        if self.context is not None:
            request["context"] = self.context
        return request

    def entities_json(self) -> str:
        """The carried entities as Cedar JSON text ("" when none)."""
        return json.dumps(list(self.entities), separators=(",", ":")) if self.entities else ""

    def proto(self) -> pb.IsAuthorizedRequest:
        """The pdp.v1 request, with entities and context as `_json` text (the fast path)."""
        request = pb.IsAuthorizedRequest(
            principal=pb.EntityUid(type=self.principal[0], id=self.principal[1]),
            action=pb.EntityUid(type="Action", id=self.action),
            resource=pb.EntityUid(type=self.resource[0], id=self.resource[1]),
            entities_json=self.entities_json(),
        )
        if self.context is not None:
            request.context_json = json.dumps(self.context, separators=(",", ":"))
        return request


def distinct_pairs(calls: list[Call]) -> int:
    """How many distinct principal/resource pairs the mix holds."""
    return len({(c.principal, c.resource) for c in calls})


def expected_orders_decision(call: Call) -> bool:
    """What the orders policies decide (the model the decisions are checked against)."""
    kind, ident = call.principal
    if kind == "Anonymous":
        return False
    if call.action in ("adminListUserOrders", "refundOrder"):
        return kind == "User" and "admin" in call.roles
    if call.action == "reserveStock":
        return kind == "Service" and "stock-service" in call.roles
    if kind != "User":
        return False
    if call.action == "readOrder":
        return (
            call.owner == ident
            or ("support" in call.roles and call.tenant == call.resource_tenant)
            or (ident, call.resource[1]) in bundles.DELEGATED
        )
    if call.action == "cancelOrder":
        return call.owner == ident
    if call.action == "listUserOrders":
        return call.resource == ("User", ident)
    return False


def _gateway_context(method: str, path: str) -> dict[str, Any]:
    return {"method": method, "path": path, "source_ip": "10.1.2.3", "scopes": ["orders"]}


def orders_mix(size: int = 1500, users: int = 400, seed: int = 42) -> list[Call]:
    """The orders API mix: ~85% carry principal and resource entities, the rest use the bundle's."""
    rng = random.Random(seed)
    people = []
    for n in range(users):
        roll = rng.random()
        roles = ("support",) if roll < 0.12 else ("admin",) if roll < 0.2 else ()
        people.append((f"u{n}", bundles.TENANTS[n % 2], roles))
    calls: list[Call] = []
    for n in range(size):
        roll = rng.random()
        if roll < 0.15:
            calls.append(_bundle_only_call(rng))
            continue
        ident, tenant, roles = rng.choice(people)
        me = bundles.user_entity(ident, tenant, roles)
        if roll < 0.75:  # an order: own (allowed), or someone else's (support may read)
            action = rng.choice(
                ("readOrder", "readOrder", "readOrder", "cancelOrder", "refundOrder")
            )
            owner_id, owner_tenant, _ = (
                (ident, tenant, ()) if rng.random() < 0.4 else rng.choice(people)
            )
            order = f"ob-{n}"
            entities = (me, bundles.order_entity(order, owner_id, owner_tenant, 500 + n))
            call = Call(
                ("User", ident),
                action,
                ("Order", order),
                entities,
                _gateway_context("GET", f"/api/orders/{order}"),
                roles,
                tenant,
                owner_id,
                owner_tenant,
            )
        else:  # a user's order list: own (allowed), or another's (BOLA probe, or admin)
            other, other_tenant, other_roles = (
                (ident, tenant, roles) if rng.random() < 0.5 else rng.choice(people)
            )
            action = "listUserOrders" if rng.random() < 0.8 else "adminListUserOrders"
            entities = (
                (me,)
                if other == ident
                else (me, bundles.user_entity(other, other_tenant, other_roles))
            )
            call = Call(
                ("User", ident),
                action,
                ("User", other),
                entities,
                _gateway_context("GET", f"/api/users/{other}/orders"),
                roles,
                tenant,
                other,
                other_tenant,
            )
        calls.append(_with_expectation(call))
    return calls


def _bundle_only_call(rng: random.Random) -> Call:
    """A request that carries no entities: principal and resource are bundle entities."""
    if rng.random() < 0.15:
        service = rng.choice(sorted(bundles.BUNDLE_SERVICES))
        order = rng.choice(sorted(bundles.BUNDLE_ORDERS))
        roles = bundles.BUNDLE_SERVICES[service]
        call = Call(("Service", service), "reserveStock", ("Order", order), roles=roles)
        return _with_expectation(call)
    user = rng.choice(sorted(bundles.BUNDLE_USERS))
    tenant, roles = bundles.BUNDLE_USERS[user]
    if rng.random() < 0.7:
        order = rng.choice(sorted(bundles.BUNDLE_ORDERS))
        owner, order_tenant = bundles.BUNDLE_ORDERS[order]
        action = rng.choice(("readOrder", "cancelOrder", "refundOrder"))
        resource: Uid = ("Order", order)
    else:
        owner = rng.choice(sorted(bundles.BUNDLE_USERS))
        order_tenant = bundles.BUNDLE_USERS[owner][0]
        action = rng.choice(("listUserOrders", "adminListUserOrders"))
        resource = ("User", owner)
    call = Call(("User", user), action, resource, (), None, roles, tenant, owner, order_tenant)
    return _with_expectation(call)


def _with_expectation(call: Call) -> Call:
    return Call(
        call.principal,
        call.action,
        call.resource,
        call.entities,
        call.context,
        call.roles,
        call.tenant,
        call.owner,
        call.resource_tenant,
        expected_orders_decision(call),
    )


def entity_sweep_mix(size: int = 1200, users: int = 400, seed: int = 11) -> list[Call]:
    """Gateway-style requests on an orders bundle of any size: each carries its own entities."""
    return [c for c in orders_mix(size * 2, users, seed) if c.entities][:size]


def policy_sweep_mix(
    n_policies: int, size: int = 1200, users: int = 300, seed: int = 5
) -> list[Call]:
    """Requests over the sweep bundle's resource types; some hit template-linked grants."""
    rng = random.Random(seed)
    n_types, _, _ = bundles.sweep_shape(n_policies)
    grants = bundles.sweep_links(n_policies, users)
    calls: list[Call] = []
    for n in range(size):
        if grants and rng.random() < 0.2:
            ident, t, res = rng.choice(grants)
            action = "read"
        else:
            ident, t, res = f"u{rng.randrange(users)}", rng.randrange(n_types), f"x{n}"
            action = rng.choice(bundles.SWEEP_ACTIONS)
        tenant = f"t{rng.randrange(4)}"
        k = rng.randrange(3)
        parents = [bundles.uid("Role", f"r{t}-{k}")] if rng.random() < 0.3 else []
        owner = ident if rng.random() < 0.4 else f"u{rng.randrange(users)}"
        me = {"uid": bundles.uid("User", ident), "attrs": {"tenant": tenant}, "parents": parents}
        thing = {
            "uid": bundles.uid(f"Res{t}", res),
            "attrs": {
                "owner": {"__entity": bundles.uid("User", owner)},
                "tenant": f"t{rng.randrange(4)}",
            },
            "parents": [],
        }
        calls.append(Call(("User", ident), action, (f"Res{t}", res), (me, thing)))
    return calls
