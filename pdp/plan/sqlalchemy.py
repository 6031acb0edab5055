"""Query plans as SQLAlchemy filters (the `pdp[sql]` extra), exact on SQLite and PostgreSQL.

`to_filter(plan, mapping)` gives a boolean `ColumnElement` for a `WHERE` clause. The
mapping says where a resource's id, attributes and parents live; a column's Cedar type is
read from its SQL type (Integer: Long, String: String, Boolean: Boolean) unless given.
SQL NULL is an absent attribute. Negations are written so that NULL never turns a Cedar
`false` into SQL's unknown: `not owner == X` is `owner_id IS NULL OR owner_id != 'X'`.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from pdp.errors import PlanUnsupported
from pdp.plan import condition as c
from pdp.plan import values
from pdp.plan.sqllike import CedarLike
from pdp.plan.sqlmapping import (
    Attribute,
    MappedAttribute,
    ParentTable,
    ResourceMapping,
    SetTable,
)
from pdp.plan.sqlterms import (
    NO_MATCH,
    Leaf,
    Resolved,
    ScalarTerm,
    SetTerm,
    Sql,
    ValueTerm,
    all_of,
    any_of,
    cedar_type,
    correlated,
    distinct,
    dotted,
    emit,
    ids_of,
    literal_for,
    negate,
    typed,
)
from pdp.plantypes import Plan, PlanKind

__all__ = ["Attribute", "ParentTable", "ResourceMapping", "SetTable", "to_filter"]


def to_filter(plan: Plan, mapping: ResourceMapping) -> ColumnElement[bool]:
    """The plan as a filter; PlanUnsupported (naming the part) when the mapping cannot say it."""
    if plan.kind is PlanKind.ALWAYS_ALLOWED:
        return sa.true()
    if plan.kind is PlanKind.ALWAYS_DENIED:
        return sa.false()
    for part in plan.unsupported:
        raise PlanUnsupported(f"{part.policy}: {part.expression} ({part.reason})")
    return emit(_Writer(plan.resource_type, mapping).write(plan.condition))


class _Writer:
    """Writes one plan's condition for one mapping."""

    def __init__(self, resource_type: str, mapping: ResourceMapping) -> None:
        self._type = resource_type
        self._mapping = mapping
        self._attributes: dict[tuple[str, ...], MappedAttribute] = {
            (name,) if isinstance(name, str) else tuple(name): mapped
            for name, mapped in mapping.attributes.items()
        }

    def write(self, node: c.Node) -> Sql:
        op = node.get("op")
        if op is None:
            return node["value"] is True
        if op == "not":
            return negate(self.write(node["args"][0]))
        if op in ("and", "or"):
            parts = [self.write(arg) for arg in node["args"]]
            return all_of(parts) if op == "and" else any_of(parts)
        return self._leaf(node)

    # --- terms ---------------------------------------------------------------------------

    def _resolve(self, term: c.Node) -> Resolved:
        if "value" in term:
            return ValueTerm(term["value"])
        if term.get("var") == "resource":
            return ScalarTerm(self._mapping.id, values.ENTITY, self._type)
        path = tuple(term["attr"])
        mapped = self._attributes.get(path)
        if mapped is None:
            for cut in range(1, len(path)):
                found = self._attributes.get(path[:cut])
                if found is not None and typed(found, path[:cut]).kind == values.ENTITY:
                    raise PlanUnsupported(
                        f"attribute {dotted(path)}: an attribute of the entity in "
                        f"{dotted(path[:cut])}, which is not in the resource's table"
                    )
            raise PlanUnsupported(f"attribute {dotted(path)} is not in the mapping")
        if isinstance(mapped, SetTable):
            kind, entity_type = cedar_type(mapped.type, mapped.value, path)
            return SetTerm(mapped, kind, entity_type, self._mapping.id)
        return typed(mapped, path)

    # --- leaves --------------------------------------------------------------------------

    def _leaf(self, node: c.Node) -> Sql:
        op = node["op"]
        if op == "unsupported":
            raise PlanUnsupported(f"{node['policy']}: {node['expression']} ({node['reason']})")
        if op == "has":
            return self._has(node["args"][0]["attr"])
        args = [self._resolve(arg) for arg in node["args"]]
        if all(isinstance(a, ValueTerm) for a in args):
            folded = c.fold({**node, "args": [{"value": a.value} for a in args]})  # type: ignore[union-attr]
            if folded is None:
                raise PlanUnsupported(f"{op} over extension values")
            return folded
        # Dispatched by name (_LEAVES): each leaf method returns one of these.
        return cast("Sql", getattr(self, _LEAVES[op])(node, *args))

    def _has(self, path: list[str]) -> Sql:
        mapped = self._attributes.get(tuple(path))
        if mapped is None:
            self._resolve(c.attr(path))  # raises, naming the problem
            raise AssertionError("unreachable")
        if isinstance(mapped, SetTable):
            return SetTerm(mapped, "", None, self._mapping.id).presence()
        column = typed(mapped, tuple(path)).sql
        return Leaf(column.is_not(None))

    def _eq(self, node: c.Node, left: Resolved, right: Resolved) -> Sql:
        if isinstance(left, SetTerm) or isinstance(right, SetTerm):
            raise PlanUnsupported("equality of a whole set attribute")
        if isinstance(left, ValueTerm):
            left, right = right, left
        assert isinstance(left, ScalarTerm)
        if isinstance(right, ValueTerm):
            literal = literal_for(left, right.value)
            if literal is NO_MATCH:
                return False
            return Leaf(left.sql == literal, (left.sql,))
        assert isinstance(right, ScalarTerm)
        if (left.kind, left.entity_type) != (right.kind, right.entity_type):
            return False
        return Leaf(left.sql == right.sql, (left.sql, right.sql))

    def _compare(self, node: c.Node, left: Resolved, right: Resolved) -> Sql:
        sides: list[ColumnElement[Any]] = []
        nullable: list[ColumnElement[Any]] = []
        for side in (left, right):
            if isinstance(side, ValueTerm):
                if values.kind_of(side.value) != values.LONG:
                    return False
                sides.append(sa.literal(side.value, sa.BigInteger()))
            elif isinstance(side, ScalarTerm) and side.kind == values.LONG:
                sides.append(side.sql)
                nullable.append(side.sql)
            else:
                return False
        low, high = sides
        op = node["op"]
        expr = {"<": low < high, "<=": low <= high, ">": low > high, ">=": low >= high}[op]
        return Leaf(expr, tuple(nullable))

    def _like(self, node: c.Node, subject: Resolved) -> Sql:
        if not (isinstance(subject, ScalarTerm) and subject.kind == values.STRING):
            return False
        return Leaf(CedarLike(subject.sql, node["pattern"]), (subject.sql,))

    def _is(self, node: c.Node, subject: Resolved) -> Sql:
        if not (isinstance(subject, ScalarTerm) and subject.kind == values.ENTITY):
            return False
        if subject.entity_type != node["entity_type"]:
            return False
        return Leaf(subject.sql.is_not(None))

    def _in(self, node: c.Node, subject: Resolved) -> Sql:
        listed = [(e["type"], e["id"]) for e in node["entities"]]
        if not (isinstance(subject, ScalarTerm) and subject.kind == values.ENTITY):
            return False
        own = ids_of(listed, subject.entity_type)
        parts: list[Sql] = [Leaf(subject.sql.in_(own), (subject.sql,))] if own else []
        if node["args"][0].get("var") == "resource":
            for parent_type, where in self._mapping.parents.items():
                ids = ids_of(listed, parent_type)
                if not ids:
                    continue
                if isinstance(where, ParentTable):
                    rows = sa.exists().where(where.key == self._mapping.id, where.parent.in_(ids))
                    parts.append(Leaf(correlated(rows, self._mapping.id)))
                else:
                    parts.append(Leaf(where.in_(ids), (where,)))
        return any_of(parts)

    def _contains(self, node: c.Node, left: Resolved, right: Resolved) -> Sql:
        if isinstance(left, ValueTerm):  # [A, B].contains(resource.owner): owner_id IN (...)
            if values.kind_of(left.value) != values.SET:
                return False
            if isinstance(right, SetTerm):
                raise PlanUnsupported("a set literal containing a whole set attribute")
            assert isinstance(right, ScalarTerm)
            found = [literal_for(right, item) for item in left.value]
            found = [f for f in found if f is not NO_MATCH]
            return Leaf(right.sql.in_(found), (right.sql,)) if found else False
        if not isinstance(left, SetTerm):
            return False
        if isinstance(right, SetTerm):
            raise PlanUnsupported("a set attribute containing a set attribute")
        if isinstance(right, ValueTerm):
            literal = literal_for(left.element(), right.value)
            if literal is NO_MATCH:
                return False
            return all_of([left.presence(), Leaf(left.rows(left.table.value == literal))])
        if (right.kind, right.entity_type) != (left.kind, left.entity_type):
            return False
        return all_of([left.presence(), Leaf(left.rows(left.table.value == right.sql))])

    def _contains_all(self, node: c.Node, left: Resolved, right: Resolved) -> Sql:
        if isinstance(left, SetTerm) and isinstance(right, ValueTerm):  # tags ⊇ [a, b]
            if values.kind_of(right.value) != values.SET:
                return False
            wanted = [literal_for(left.element(), item) for item in right.value]
            if any(w is NO_MATCH for w in wanted):
                return False
            each = [Leaf(left.rows(left.table.value == w)) for w in distinct(wanted)]
            return all_of([left.presence(), *each])
        if isinstance(left, ValueTerm) and isinstance(right, SetTerm):  # [a, b] ⊇ tags
            if values.kind_of(left.value) != values.SET:
                return False
            allowed = [literal_for(right.element(), item) for item in left.value]
            allowed = [a for a in allowed if a is not NO_MATCH]
            stray = right.rows(right.table.value.not_in(allowed))
            return all_of([right.presence(), Leaf(~stray)])
        return self._set_pair(left, right)

    def _contains_any(self, node: c.Node, left: Resolved, right: Resolved) -> Sql:
        if isinstance(left, ValueTerm) and isinstance(right, SetTerm):
            left, right = right, left
        if isinstance(left, SetTerm) and isinstance(right, ValueTerm):
            if values.kind_of(right.value) != values.SET:
                return False
            wanted = [literal_for(left.element(), item) for item in right.value]
            wanted = [w for w in wanted if w is not NO_MATCH]
            if not wanted:
                return False
            return all_of([left.presence(), Leaf(left.rows(left.table.value.in_(wanted)))])
        return self._set_pair(left, right)

    @staticmethod
    def _set_pair(left: Resolved, right: Resolved) -> Sql:
        if isinstance(left, SetTerm) and isinstance(right, SetTerm):
            raise PlanUnsupported("comparing two set attributes")
        return False  # a scalar is no set: Cedar errors, so the leaf is false

    def _is_empty(self, node: c.Node, subject: Resolved) -> Sql:
        if not isinstance(subject, SetTerm):
            return False
        return all_of([subject.presence(), Leaf(~subject.rows())])

    def _kind(self, node: c.Node, subject: Resolved) -> Sql:
        kind = node["kind"]
        if isinstance(subject, SetTerm):
            if kind == values.SET or (kind == values.ENTITY_SET and subject.kind == values.ENTITY):
                return subject.presence()
            if kind == values.ENTITY_SET:  # an empty set of anything has only entities
                return all_of([subject.presence(), Leaf(~subject.rows())])
            return False
        assert isinstance(subject, ScalarTerm)
        return Leaf(subject.sql.is_not(None)) if subject.kind == kind else False


_LEAVES = {
    "==": "_eq",
    "<": "_compare",
    "<=": "_compare",
    ">": "_compare",
    ">=": "_compare",
    "like": "_like",
    "is": "_is",
    "in": "_in",
    "contains": "_contains",
    "containsAll": "_contains_all",
    "containsAny": "_contains_any",
    "isEmpty": "_is_empty",
    "kind": "_kind",
}
