"""A small world for plan tests: orgs, tenants, groups and users as bundle entities; documents
(`Doc`) as rows of SQL tables mapped column by column, as an application would map them.

    docs(id, owner_id, tenant_id, level, name, flag, tags_present, parent_tenant)
    doc_tags(doc_id, tag)          the set attribute `tags`
    doc_groups(doc_id, group_id)   parents of type Group (many-to-many)
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cedarpy
import sqlalchemy as sa

from pdp.bundle import load_bundle
from pdp.bundle.compiler import CompiledBundle
from pdp.model import EntityRef
from pdp.plan import Plan, PlanRequest, plan_resources
from pdp.plan.sqlalchemy import Attribute, ParentTable, ResourceMapping, SetTable
from tests.support.plan_differential import Tally, compare, expected


def _entity(type_: str, id_: str, parents: Sequence[tuple[str, str]] = (), **attrs: Any) -> dict:
    return {
        "uid": {"type": type_, "id": id_},
        "attrs": attrs,
        "parents": [{"type": t, "id": i} for t, i in parents],
    }


def ref(type_: str, id_: str) -> dict[str, Any]:
    return {"__entity": {"type": type_, "id": id_}}


WORLD = [
    _entity("Org", "o1"),
    _entity("Org", "o2"),
    _entity("Tenant", "t1", [("Org", "o1")]),
    _entity("Tenant", "t2", [("Org", "o1")]),
    _entity("Tenant", "t3", [("Org", "o2")]),
    _entity("Group", "g1"),
    _entity("Group", "g2", [("Group", "g1")]),
    _entity("Role", "admin"),
    _entity(
        "User",
        "u1",
        [("Tenant", "t1")],
        level=3,
        name="ann",
        tenant=ref("Tenant", "t1"),
        tags=["a", "b"],
    ),
    _entity(
        "User",
        "u2",
        [("Tenant", "t2"), ("Group", "g2")],
        level=7,
        name="Bob",
        tenant=ref("Tenant", "t2"),
        tags=[],
    ),
    _entity("User", "u3", [("Tenant", "t3"), ("Role", "admin")], tenant=ref("Tenant", "t3")),
]
PRINCIPALS = ("u1", "u2", "u3", "ghost")  # ghost: in no entity store, as a token-only user

metadata = sa.MetaData()
docs = sa.Table(
    "docs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner_id", sa.Text),
    sa.Column("tenant_id", sa.Text),
    sa.Column("level", sa.BigInteger),
    sa.Column("name", sa.Text),
    sa.Column("flag", sa.Boolean),
    sa.Column("tags_present", sa.Boolean),
    sa.Column("parent_tenant", sa.Text),
)
doc_tags = sa.Table("doc_tags", metadata, sa.Column("doc_id", sa.Text), sa.Column("tag", sa.Text))
doc_groups = sa.Table(
    "doc_groups", metadata, sa.Column("doc_id", sa.Text), sa.Column("group_id", sa.Text)
)
MAPPING = ResourceMapping(
    id=docs.c.id,
    attributes={
        "owner": Attribute(docs.c.owner_id, "User"),
        "tenant": Attribute(docs.c.tenant_id, "Tenant"),
        "level": docs.c.level,
        "name": docs.c.name,
        "flag": docs.c.flag,
        "tags": SetTable(doc_tags.c.doc_id, doc_tags.c.tag, present=docs.c.tags_present),
    },
    parents={
        "Tenant": docs.c.parent_tenant,
        "Group": ParentTable(doc_groups.c.doc_id, doc_groups.c.group_id),
    },
)


class DocTable:
    """Rows (Doc entities) for the fixed tables; `compare` loads and queries them."""

    mapping = MAPPING

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def load(self, connection: sa.Connection) -> None:
        metadata.create_all(connection)
        base, tags, groups = [], [], []
        for row in self.rows:
            ident, attrs = row["uid"]["id"], row["attrs"]
            parents = row.get("parents", [])
            tenants = [p["id"] for p in parents if p["type"] == "Tenant"]
            assert len(tenants) <= 1, "one Tenant parent per row: it is a column"
            base.append(
                {
                    "id": ident,
                    "owner_id": _id(attrs.get("owner")),
                    "tenant_id": _id(attrs.get("tenant")),
                    "level": attrs.get("level"),
                    "name": attrs.get("name"),
                    "flag": attrs.get("flag"),
                    "tags_present": "tags" in attrs,
                    "parent_tenant": tenants[0] if tenants else None,
                }
            )
            tags += [{"doc_id": ident, "tag": tag} for tag in attrs.get("tags", [])]
            groups += [
                {"doc_id": ident, "group_id": p["id"]} for p in parents if p["type"] == "Group"
            ]
        connection.execute(docs.insert(), base)
        if tags:
            connection.execute(doc_tags.insert(), tags)
        if groups:
            connection.execute(doc_groups.insert(), groups)

    def select(self, connection: sa.Connection, where: sa.ColumnElement[bool]) -> set[str]:
        return {row[0] for row in connection.execute(sa.select(docs.c.id).where(where))}


def _id(value: Any) -> str | None:
    return value["__entity"]["id"] if isinstance(value, dict) else None


def doc(ident: str, parents: Sequence[tuple[str, str]] = (), **attrs: Any) -> dict[str, Any]:
    return _entity("Doc", ident, parents, **attrs)


def bundle_of(policies: str, directory: Path | None = None) -> CompiledBundle:
    """A schema-less bundle of `policies` over WORLD, loaded as pdp loads any bundle."""
    root = Path(directory or tempfile.mkdtemp(prefix="pdp-plan-"))
    (root / "policies.cedar").write_text(policies)
    (root / "entities.json").write_text(json.dumps(WORLD))
    return load_bundle(root)


def question(principal: str, context: dict[str, Any] | None = None) -> PlanRequest:
    return PlanRequest(
        EntityRef("User", principal),
        EntityRef("Action", "read"),
        "Doc",
        context_json=json.dumps(context or {}),
    )


def check(
    bundle: CompiledBundle,
    principal: str,
    rows: Sequence[dict[str, Any]],
    engines: Sequence[sa.Engine],
    context: dict[str, Any] | None = None,
    tally: Tally | None = None,
) -> tuple[Plan, Tally, set[str]]:
    """Plan, then compare predicate and SQL with Cedar on `rows`; (plan, tally, allowed ids)."""
    tally = tally or Tally()
    plan = plan_resources(bundle, question(principal, context))
    store = cedarpy.Entities.from_json_str(json.dumps([*WORLD, *rows]))
    request = {
        "principal": {"type": "User", "id": principal},
        "action": {"type": "Action", "id": "read"},
        "context": context or {},
    }
    want = expected(bundle.policy_set, store, None, request, rows)
    compare(plan, rows, want, tally, f"{principal} {plan.condition}", DocTable(rows), engines)
    return plan, tally, {ident for ident, ok in want.items() if ok}
