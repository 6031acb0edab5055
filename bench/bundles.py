"""Benchmark bundles, generated at run time: orders-like, policy sweep, entity sweep."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

TENANTS = ("acme", "globex")
ROLES = ("admin", "support", "stock-service")

# The same shape as the example bundle's schema (policies/orders.cedarschema), so one request
# mix runs on either; written here so the benchmark does not depend on that bundle's timing.
ORDERS_SCHEMA = """
entity Tenant;
entity Role;
entity User in [Role, Tenant] = { tenant?: Tenant, email?: String };
entity Service in [Role];
entity ApiClient in [Role] = { owner?: String };
entity Anonymous;
entity Order in [Tenant] = { owner: User, tenant: Tenant, status: String, total_cents: Long };
type RequestContext = {
  method?: String, path?: String, source_ip?: ipaddr, scopes?: Set<String>, peer?: String,
};
action readOrder, cancelOrder, refundOrder, reserveStock appliesTo {
  principal: [User, Service, ApiClient, Anonymous], resource: [Order], context: RequestContext,
};
action listUserOrders, adminListUserOrders appliesTo {
  principal: [User, Service, ApiClient, Anonymous], resource: [User], context: RequestContext,
};
"""

ORDERS_POLICIES = """
@id("anonymous-denied")
forbid (principal is Anonymous, action, resource);

@id("customer-read-own-order")
permit (principal is User, action == Action::"readOrder", resource is Order)
when { resource.owner == principal };

@id("customer-cancel-own-order")
permit (principal is User, action == Action::"cancelOrder", resource is Order)
when { resource.owner == principal };

@id("customer-list-own-orders")
permit (principal is User, action == Action::"listUserOrders", resource is User)
when { resource == principal };

@id("support-read-tenant-orders")
permit (principal is User in Role::"support", action == Action::"readOrder", resource is Order)
when { principal in resource.tenant };

@id("admin-call-admin-functions")
permit (
  principal in Role::"admin",
  action in [Action::"adminListUserOrders", Action::"refundOrder"],
  resource
);

@id("admin-functions-require-admin")
forbid (
  principal,
  action in [Action::"adminListUserOrders", Action::"refundOrder"],
  resource
)
unless { principal in Role::"admin" };

@id("stock-service-reserve-stock")
permit (principal is Service in Role::"stock-service", action == Action::"reserveStock",
        resource is Order);

@id("reserve-stock-services-only")
forbid (principal, action == Action::"reserveStock", resource)
unless { principal is Service };

@id("delegated-order-read")
permit (principal == ?principal, action == Action::"readOrder", resource == ?resource);
"""

# Bundle entities the request mix relies on (as the example bundle has them).
BUNDLE_USERS = {
    "42": ("acme", ()),
    "43": ("acme", ()),
    "77": ("globex", ()),
    "support-sam": ("acme", ("support",)),
    "support-gus": ("globex", ("support",)),
    "admin-ada": ("acme", ("admin",)),
}
BUNDLE_ORDERS = {
    "o-1001": ("42", "acme"),
    "o-1002": ("42", "acme"),
    "o-1003": ("43", "acme"),
    "o-2001": ("77", "globex"),
}
BUNDLE_SERVICES = {
    "spiffe://cluster.local/ns/shop/sa/inventory": ("stock-service",),
    "spiffe://cluster.local/ns/shop/sa/recommendations": (),
}
DELEGATED = {("43", "o-1001")}  # (user, order) pairs granted by a template link


def uid(kind: str, ident: str) -> dict[str, str]:
    """A Cedar JSON entity uid."""
    return {"type": kind, "id": ident}


def user_entity(ident: str, tenant: str, roles: tuple[str, ...] = ()) -> dict[str, Any]:
    """A User entity in Cedar JSON, child of its tenant and roles."""
    parents = [uid("Tenant", tenant)] + [uid("Role", r) for r in roles]
    attrs = {"tenant": {"__entity": uid("Tenant", tenant)}, "email": f"{ident}@{tenant}.example"}
    return {"uid": uid("User", ident), "attrs": attrs, "parents": parents}


def order_entity(ident: str, owner: str, tenant: str, cents: int = 1999) -> dict[str, Any]:
    """An Order entity in Cedar JSON, child of its tenant."""
    attrs = {
        "owner": {"__entity": uid("User", owner)},
        "tenant": {"__entity": uid("Tenant", tenant)},
        "status": "placed",
        "total_cents": cents,
    }
    return {"uid": uid("Order", ident), "attrs": attrs, "parents": [uid("Tenant", tenant)]}


def orders_base_entities() -> list[dict[str, Any]]:
    """Tenants, roles, named users, services and orders: what the mix's bundle-only requests use."""
    out: list[dict[str, Any]] = [
        {"uid": uid("Tenant", t), "attrs": {}, "parents": []} for t in TENANTS
    ]
    out += [{"uid": uid("Role", r), "attrs": {}, "parents": []} for r in ROLES]
    out += [user_entity(u, t, roles) for u, (t, roles) in BUNDLE_USERS.items()]
    out += [
        {"uid": uid("Service", s), "attrs": {}, "parents": [uid("Role", r) for r in roles]}
        for s, roles in BUNDLE_SERVICES.items()
    ]
    out.append({"uid": uid("Anonymous", "anonymous"), "attrs": {}, "parents": []})
    out += [order_entity(o, owner, t) for o, (owner, t) in BUNDLE_ORDERS.items()]
    return out


def write_orders_bundle(root: Path, entity_count: int = 0, name: str = "bench-orders") -> Path:
    """An orders bundle like the example one, padded with users and orders to `entity_count`."""
    _fresh(root)
    (root / "orders.cedarschema").write_text(ORDERS_SCHEMA)
    (root / "orders.cedar").write_text(ORDERS_POLICIES)
    links = [
        {
            "template_id": "delegated-order-read",
            "link_id": f"delegate-{order}-to-{user}",
            "args": {"?principal": uid("User", user), "?resource": uid("Order", order)},
        }
        for user, order in sorted(DELEGATED)
    ]
    (root / "links.json").write_text(json.dumps(links))
    entities = orders_base_entities()
    filler = max(0, entity_count - len(entities))
    users = max(1, filler // 2)
    for n in range(filler):
        tenant = TENANTS[n % len(TENANTS)]
        if n < users:
            entities.append(user_entity(f"fu{n}", tenant))
        else:
            entities.append(order_entity(f"fo{n}", f"fu{n % users}", tenant, 100 + n % 9000))
    (root / "entities.json").write_text(json.dumps(entities, separators=(",", ":")))
    (root / "manifest.yaml").write_text(f"name: {name}\nvalidation: strict\n")
    return root


# --- the policy-count sweep: many resource types, no schema -------------------------------

SWEEP_ACTIONS = ("read", "write", "list", "delete")


def sweep_shape(n_policies: int) -> tuple[int, int, int]:
    """(resource types, static policies, template links) for a sweep bundle of `n_policies`."""
    links = n_policies // 5
    static = n_policies - links
    types = max(2, n_policies // 25)
    return types, static, links


def _sweep_policy(i: int, n_types: int) -> str:
    t, k = i % n_types, i // n_types
    res, role = f"Res{t}", f"r{t}-{k // 5}"
    shape = k % 5
    head = f'@id("p{i}")\n'
    if shape == 0:
        return head + (
            f'permit (principal is User, action == Action::"read", resource is {res})\n'
            "when { resource.owner == principal };"
        )
    if shape == 1:
        return head + (
            f'permit (principal in Role::"{role}", action in [Action::"read", Action::"write"], '
            f"resource is {res});"
        )
    if shape == 2:
        return head + (
            f'permit (principal is User, action == Action::"list", resource is {res})\n'
            "when { principal.tenant == resource.tenant };"
        )
    if shape == 3:
        return head + (
            f'forbid (principal, action == Action::"delete", resource is {res})\n'
            'unless { principal in Role::"admin" };'
        )
    return head + f'permit (principal in Role::"admin", action, resource is {res});'


def sweep_links(n_policies: int, users: int, seed: int = 7) -> list[tuple[str, int, str]]:
    """The template-linked grants of a sweep bundle: (user id, resource type, resource id)."""
    n_types, _, links = sweep_shape(n_policies)
    rng = random.Random(seed)
    return [(f"u{rng.randrange(users)}", rng.randrange(n_types), f"g{n}") for n in range(links)]


def write_policy_sweep_bundle(root: Path, n_policies: int, users: int) -> Path:
    """`n_policies` policies over many resource types (one file per type) plus linked grants."""
    _fresh(root)
    n_types, static, _ = sweep_shape(n_policies)
    by_type: dict[int, list[str]] = {}
    for i in range(static):
        by_type.setdefault(i % n_types, []).append(_sweep_policy(i, n_types))
    (root / "types").mkdir()
    for t, texts in by_type.items():
        (root / "types" / f"res{t}.cedar").write_text("\n\n".join(texts) + "\n")
    (root / "grants.cedar").write_text(
        '@id("grant")\n'
        'permit (principal == ?principal, action == Action::"read", resource == ?resource);\n'
    )
    links = [
        {
            "template_id": "grant",
            "link_id": f"grant-{n}",
            "args": {"?principal": uid("User", user), "?resource": uid(f"Res{t}", res)},
        }
        for n, (user, t, res) in enumerate(sweep_links(n_policies, users))
    ]
    (root / "links.json").write_text(json.dumps(links, separators=(",", ":")))
    roles = [{"uid": uid("Role", "admin"), "attrs": {}, "parents": []}]
    (root / "entities.json").write_text(json.dumps(roles))
    (root / "manifest.yaml").write_text(f"name: bench-policies-{n_policies}\nvalidation: off\n")
    return root


def copy_bundle(src: Path, dst: Path) -> Path:
    """A private copy of a bundle (e.g. the example one) that the benchmark may change."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".*", "*~", "*.swp"))
    return dst


def _fresh(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
