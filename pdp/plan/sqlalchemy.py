"""Query plans as SQLAlchemy filters (the `pdp[sql]` extra), exact on SQLite and PostgreSQL.

`to_filter(plan, mapping)` gives a boolean `ColumnElement` for a `WHERE` clause. The
mapping says where a resource's id, attributes and parents live; a column's Cedar type is
read from its SQL type (Integer: Long, String: String, Boolean: Boolean) unless given.
SQL NULL is an absent attribute. Negations are written so that NULL never turns a Cedar
`false` into SQL's unknown: `not owner == X` is `owner_id IS NULL OR owner_id != 'X'`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

from pdp.errors import PlanUnsupported
from pdp.plan import condition as c
from pdp.plan import values
from pdp.plantypes import Plan, PlanKind

__all__ = ["Attribute", "ParentTable", "ResourceMapping", "SetTable", "to_filter"]

SCALARS = (values.LONG, values.STRING, values.BOOLEAN)


@dataclass(frozen=True)
class Attribute:
    """A column with its Cedar type given: "Long", "String", "Boolean" or an entity type
    (the column then holds the entity's id)."""

    column: ColumnElement[Any]
    type: str


@dataclass(frozen=True)
class SetTable:
    """A set attribute kept in a join table: one row (`key` = resource id, `value`) per element.

    `type` is the elements' Cedar type (as for Attribute; default: from `value`'s SQL type).
    `present` is a boolean column of the resource's table saying whether the attribute is
    there at all (NULL or false: absent); None: every resource has it.
    """

    key: ColumnElement[Any]
    value: ColumnElement[Any]
    type: str | None = None
    present: ColumnElement[Any] | None = None


@dataclass(frozen=True)
class ParentTable:
    """Parents of one entity type kept in a join table (many-to-many)."""

    key: ColumnElement[Any]  # the resource's id
    parent: ColumnElement[Any]  # the parent's id


MappedAttribute = ColumnElement[Any] | Attribute | SetTable


@dataclass(frozen=True)
class ResourceMapping:
    """Where the resources of a plan live.

    `id`: the resource id column. `attributes`: attribute name (or a tuple path into a
    record attribute) -> column, Attribute or SetTable. `parents`: entity type -> the column
    holding the resource's one parent of that type, or a ParentTable. Parent types not
    listed are taken to have no parents; the hierarchy above the parents comes from the
    bundle's entities, folded into the plan.
    """

    id: ColumnElement[Any]
    attributes: AbcMapping[str | tuple[str, ...], MappedAttribute] = field(default_factory=dict)
    parents: AbcMapping[str, ColumnElement[Any] | ParentTable] = field(default_factory=dict)


def to_filter(plan: Plan, mapping: ResourceMapping) -> ColumnElement[bool]:
    """The plan as a filter; PlanUnsupported (naming the part) when the mapping cannot say it."""
    if plan.kind is PlanKind.ALWAYS_ALLOWED:
        return sa.true()
    if plan.kind is PlanKind.ALWAYS_DENIED:
        return sa.false()
    for part in plan.unsupported:
        raise PlanUnsupported(f"{part.policy}: {part.expression} ({part.reason})")
    return _emit(_Writer(plan.resource_type, mapping).write(plan.condition))


# --- what a term is in SQL ---------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """A scalar: a column (or the resource id) with its Cedar kind."""

    sql: ColumnElement[Any]
    kind: str  # Long, String, Boolean or Entity
    entity_type: str | None = None


@dataclass(frozen=True)
class _Set:
    table: SetTable
    kind: str
    entity_type: str | None
    resource_id: ColumnElement[Any]

    def presence(self) -> _Sql:
        if self.table.present is None:
            return True
        return _Leaf(self.table.present.is_(True))

    def rows(self, *where: ColumnElement[bool]) -> ColumnElement[bool]:
        return _correlated(
            sa.exists().where(self.table.key == self.resource_id, *where), self.resource_id
        )

    def element(self) -> _Column:
        return _Column(self.table.value, self.kind, self.entity_type)


@dataclass(frozen=True)
class _Value:
    value: Any


Resolved = _Column | _Set | _Value


# --- SQL pieces before negation ----------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    """A SQL boolean that is NULL only when one of `nullable` is NULL; or its negation."""

    expr: ColumnElement[bool]
    nullable: tuple[ColumnElement[Any], ...] = ()
    negated: bool = False


@dataclass(frozen=True)
class _Junction:
    op: str  # "and" or "or"
    parts: tuple[_Sql, ...]


_Sql = bool | _Leaf | _Junction


def _any(parts: Iterable[_Sql]) -> _Sql:
    kept = tuple(p for p in parts if p is not False)
    if any(p is True for p in kept):
        return True
    return _Junction("or", kept) if kept else False


def _all(parts: Iterable[_Sql]) -> _Sql:
    kept = tuple(p for p in parts if p is not True)
    if any(p is False for p in kept):
        return False
    return _Junction("and", kept) if kept else True


def _negate(sql: _Sql) -> _Sql:
    if isinstance(sql, bool):
        return not sql
    if isinstance(sql, _Leaf):
        return _Leaf(sql.expr, sql.nullable, not sql.negated)
    parts = [_negate(part) for part in sql.parts]
    return _any(parts) if sql.op == "and" else _all(parts)


class _Writer:
    """Writes one plan's condition for one mapping."""

    def __init__(self, resource_type: str, mapping: ResourceMapping) -> None:
        self._type = resource_type
        self._mapping = mapping
        self._attributes: dict[tuple[str, ...], MappedAttribute] = {
            (name,) if isinstance(name, str) else tuple(name): mapped
            for name, mapped in mapping.attributes.items()
        }

    def write(self, node: c.Node) -> _Sql:
        op = node.get("op")
        if op is None:
            return node["value"] is True
        if op == "not":
            return _negate(self.write(node["args"][0]))
        if op in ("and", "or"):
            parts = [self.write(arg) for arg in node["args"]]
            return _all(parts) if op == "and" else _any(parts)
        return self._leaf(node)

    # --- terms ---------------------------------------------------------------------------

    def _resolve(self, term: c.Node) -> Resolved:
        if "value" in term:
            return _Value(term["value"])
        if term.get("var") == "resource":
            return _Column(self._mapping.id, values.ENTITY, self._type)
        path = tuple(term["attr"])
        mapped = self._attributes.get(path)
        if mapped is None:
            for cut in range(1, len(path)):
                found = self._attributes.get(path[:cut])
                if found is not None and _typed(found, path[:cut]).kind == values.ENTITY:
                    raise PlanUnsupported(
                        f"attribute {_dotted(path)}: an attribute of the entity in "
                        f"{_dotted(path[:cut])}, which is not in the resource's table"
                    )
            raise PlanUnsupported(f"attribute {_dotted(path)} is not in the mapping")
        if isinstance(mapped, SetTable):
            kind, entity_type = _cedar_type(mapped.type, mapped.value, path)
            return _Set(mapped, kind, entity_type, self._mapping.id)
        return _typed(mapped, path)

    # --- leaves --------------------------------------------------------------------------

    def _leaf(self, node: c.Node) -> _Sql:
        op = node["op"]
        if op == "unsupported":
            raise PlanUnsupported(f"{node['policy']}: {node['expression']} ({node['reason']})")
        if op == "has":
            return self._has(node["args"][0]["attr"])
        args = [self._resolve(arg) for arg in node["args"]]
        if all(isinstance(a, _Value) for a in args):
            folded = c.fold({**node, "args": [{"value": a.value} for a in args]})  # type: ignore[union-attr]
            if folded is None:
                raise PlanUnsupported(f"{op} over extension values")
            return folded
        return getattr(self, _LEAVES[op])(node, *args)

    def _has(self, path: list[str]) -> _Sql:
        mapped = self._attributes.get(tuple(path))
        if mapped is None:
            self._resolve(c.attr(path))  # raises, naming the problem
            raise AssertionError("unreachable")
        if isinstance(mapped, SetTable):
            return _Set(mapped, "", None, self._mapping.id).presence()
        column = _typed(mapped, tuple(path)).sql
        return _Leaf(column.is_not(None))

    def _eq(self, node: c.Node, left: Resolved, right: Resolved) -> _Sql:
        if isinstance(left, _Set) or isinstance(right, _Set):
            raise PlanUnsupported("equality of a whole set attribute")
        if isinstance(left, _Value):
            left, right = right, left
        assert isinstance(left, _Column)
        if isinstance(right, _Value):
            literal = _literal_for(left, right.value)
            if literal is _NO_MATCH:
                return False
            return _Leaf(left.sql == literal, (left.sql,))
        assert isinstance(right, _Column)
        if (left.kind, left.entity_type) != (right.kind, right.entity_type):
            return False
        return _Leaf(left.sql == right.sql, (left.sql, right.sql))

    def _compare(self, node: c.Node, left: Resolved, right: Resolved) -> _Sql:
        sides: list[ColumnElement[Any]] = []
        nullable: list[ColumnElement[Any]] = []
        for side in (left, right):
            if isinstance(side, _Value):
                if values.kind_of(side.value) != values.LONG:
                    return False
                sides.append(sa.literal(side.value, sa.BigInteger()))
            elif isinstance(side, _Column) and side.kind == values.LONG:
                sides.append(side.sql)
                nullable.append(side.sql)
            else:
                return False
        low, high = sides
        op = node["op"]
        expr = {"<": low < high, "<=": low <= high, ">": low > high, ">=": low >= high}[op]
        return _Leaf(expr, tuple(nullable))

    def _like(self, node: c.Node, subject: Resolved) -> _Sql:
        if not (isinstance(subject, _Column) and subject.kind == values.STRING):
            return False
        return _Leaf(CedarLike(subject.sql, node["pattern"]), (subject.sql,))

    def _is(self, node: c.Node, subject: Resolved) -> _Sql:
        if not (isinstance(subject, _Column) and subject.kind == values.ENTITY):
            return False
        if subject.entity_type != node["entity_type"]:
            return False
        return _Leaf(subject.sql.is_not(None))

    def _in(self, node: c.Node, subject: Resolved) -> _Sql:
        listed = [(e["type"], e["id"]) for e in node["entities"]]
        if not (isinstance(subject, _Column) and subject.kind == values.ENTITY):
            return False
        own = _ids(listed, subject.entity_type)
        parts: list[_Sql] = [_Leaf(subject.sql.in_(own), (subject.sql,))] if own else []
        if node["args"][0].get("var") == "resource":
            for parent_type, where in self._mapping.parents.items():
                ids = _ids(listed, parent_type)
                if not ids:
                    continue
                if isinstance(where, ParentTable):
                    rows = sa.exists().where(where.key == self._mapping.id, where.parent.in_(ids))
                    parts.append(_Leaf(_correlated(rows, self._mapping.id)))
                else:
                    parts.append(_Leaf(where.in_(ids), (where,)))
        return _any(parts)

    def _contains(self, node: c.Node, left: Resolved, right: Resolved) -> _Sql:
        if isinstance(left, _Value):  # [A, B].contains(resource.owner): owner_id IN (...)
            if values.kind_of(left.value) != values.SET:
                return False
            if isinstance(right, _Set):
                raise PlanUnsupported("a set literal containing a whole set attribute")
            assert isinstance(right, _Column)
            found = [_literal_for(right, item) for item in left.value]
            found = [f for f in found if f is not _NO_MATCH]
            return _Leaf(right.sql.in_(found), (right.sql,)) if found else False
        if not isinstance(left, _Set):
            return False
        if isinstance(right, _Set):
            raise PlanUnsupported("a set attribute containing a set attribute")
        if isinstance(right, _Value):
            literal = _literal_for(left.element(), right.value)
            if literal is _NO_MATCH:
                return False
            return _all([left.presence(), _Leaf(left.rows(left.table.value == literal))])
        if (right.kind, right.entity_type) != (left.kind, left.entity_type):
            return False
        return _all([left.presence(), _Leaf(left.rows(left.table.value == right.sql))])

    def _contains_all(self, node: c.Node, left: Resolved, right: Resolved) -> _Sql:
        if isinstance(left, _Set) and isinstance(right, _Value):  # tags ⊇ [a, b]
            if values.kind_of(right.value) != values.SET:
                return False
            wanted = [_literal_for(left.element(), item) for item in right.value]
            if any(w is _NO_MATCH for w in wanted):
                return False
            each = [_Leaf(left.rows(left.table.value == w)) for w in _distinct(wanted)]
            return _all([left.presence(), *each])
        if isinstance(left, _Value) and isinstance(right, _Set):  # [a, b] ⊇ tags
            if values.kind_of(left.value) != values.SET:
                return False
            allowed = [_literal_for(right.element(), item) for item in left.value]
            allowed = [a for a in allowed if a is not _NO_MATCH]
            stray = right.rows(right.table.value.not_in(allowed))
            return _all([right.presence(), _Leaf(~stray)])
        return self._set_pair(left, right)

    def _contains_any(self, node: c.Node, left: Resolved, right: Resolved) -> _Sql:
        if isinstance(left, _Value) and isinstance(right, _Set):
            left, right = right, left
        if isinstance(left, _Set) and isinstance(right, _Value):
            if values.kind_of(right.value) != values.SET:
                return False
            wanted = [_literal_for(left.element(), item) for item in right.value]
            wanted = [w for w in wanted if w is not _NO_MATCH]
            if not wanted:
                return False
            return _all([left.presence(), _Leaf(left.rows(left.table.value.in_(wanted)))])
        return self._set_pair(left, right)

    @staticmethod
    def _set_pair(left: Resolved, right: Resolved) -> _Sql:
        if isinstance(left, _Set) and isinstance(right, _Set):
            raise PlanUnsupported("comparing two set attributes")
        return False  # a scalar is no set: Cedar errors, so the leaf is false

    def _is_empty(self, node: c.Node, subject: Resolved) -> _Sql:
        if not isinstance(subject, _Set):
            return False
        return _all([subject.presence(), _Leaf(~subject.rows())])

    def _kind(self, node: c.Node, subject: Resolved) -> _Sql:
        kind = node["kind"]
        if isinstance(subject, _Set):
            if kind == values.SET or (kind == values.ENTITY_SET and subject.kind == values.ENTITY):
                return subject.presence()
            if kind == values.ENTITY_SET:  # an empty set of anything has only entities
                return _all([subject.presence(), _Leaf(~subject.rows())])
            return False
        assert isinstance(subject, _Column)
        return _Leaf(subject.sql.is_not(None)) if subject.kind == kind else False


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


def _correlated(exists: Any, resource_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """A join-table EXISTS tied to the resource row of the enclosing query."""
    table = getattr(resource_id, "table", None)
    return exists.correlate(table) if table is not None else exists


def _emit(sql: _Sql) -> ColumnElement[bool]:
    """SQL for `sql`; a negated leaf reads NULL as `absent`, never as unknown."""
    if isinstance(sql, bool):
        return sa.true() if sql else sa.false()
    if isinstance(sql, _Junction):
        parts = [_emit(part) for part in sql.parts]
        return sa.and_(*parts) if sql.op == "and" else sa.or_(*parts)
    if not sql.negated:
        return sql.expr
    return sa.or_(*(column.is_(None) for column in sql.nullable), sa.not_(sql.expr))


# --- types and literals ------------------------------------------------------------------

_NO_MATCH = object()


def _typed(mapped: ColumnElement[Any] | Attribute, path: Sequence[str]) -> _Column:
    if isinstance(mapped, Attribute):
        kind, entity_type = _cedar_type(mapped.type, mapped.column, path)
        return _Column(mapped.column, kind, entity_type)
    if isinstance(mapped, SetTable):
        raise PlanUnsupported(f"attribute {_dotted(path)} is a set, used as a single value")
    kind, entity_type = _cedar_type(None, mapped, path)
    return _Column(mapped, kind, entity_type)


def _cedar_type(
    given: str | None, column: ColumnElement[Any], path: Sequence[str]
) -> tuple[str, str | None]:
    """(kind, entity type) of a column: as given, else from its SQL type."""
    if given is not None:
        return (given, None) if given in SCALARS else (values.ENTITY, given)
    sql_type = getattr(column, "type", None)
    where = f"attribute {_dotted(path)}"
    if isinstance(sql_type, sa.Boolean):
        return values.BOOLEAN, None
    if isinstance(sql_type, sa.Integer):
        return values.LONG, None
    if isinstance(sql_type, sa.CHAR | sa.NCHAR):
        raise PlanUnsupported(f"{where}: CHAR pads with spaces; Cedar strings compare exactly")
    if isinstance(sql_type, sa.String):
        if sql_type.collation:
            raise PlanUnsupported(
                f"{where}: collation {sql_type.collation!r} may not compare exactly as Cedar does"
            )
        return values.STRING, None
    raise PlanUnsupported(
        f"{where}: SQL type {sql_type!r} has no Cedar type; map it as Attribute(column, TYPE)"
    )


def _literal_for(column: _Column, value: Any) -> Any:
    """`value` as the column stores it, or _NO_MATCH when the column can never equal it."""
    kind = values.kind_of(value)
    if kind == values.EXTENSION:
        raise PlanUnsupported("extension values (decimal, ip, datetime, duration)")
    if column.kind == values.ENTITY:
        uid = values.as_entity(value)
        return uid[1] if uid is not None and uid[0] == column.entity_type else _NO_MATCH
    return value if kind == column.kind else _NO_MATCH


def _ids(listed: list[tuple[str, str]], entity_type: str | None) -> list[str]:
    return sorted({ident for kind, ident in listed if kind == entity_type})


def _distinct(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path)


# --- Cedar's `like` ----------------------------------------------------------------------


class CedarLike(ColumnElement[bool]):
    """`subject like pattern` as Cedar means it: case-sensitive, `*` the only wildcard.

    SQLite: GLOB (case-sensitive), with `*`, `?` and `[` of the text put in brackets.
    PostgreSQL: LIKE (case-sensitive) with `%`, `_` and the escape character escaped.
    Other dialects are refused: their LIKE may ignore case.
    """

    type = sa.Boolean()
    inherit_cache = False

    def __init__(self, subject: ColumnElement[Any], pattern: list[Any]) -> None:
        self.subject = subject
        self.pattern = pattern

    def get_children(self, **kw: Any) -> list[Any]:
        return [self.subject]


def _glob(pattern: list[Any]) -> str:
    special = {"*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(
        "*" if part == "Wildcard" else "".join(special.get(ch, ch) for ch in part["Literal"])
        for part in pattern
    )


def _like_pattern(pattern: list[Any]) -> str:
    special = {"%": "!%", "_": "!_", "!": "!!"}
    return "".join(
        "%" if part == "Wildcard" else "".join(special.get(ch, ch) for ch in part["Literal"])
        for part in pattern
    )


@compiles(CedarLike, "sqlite")
def _like_sqlite(element: CedarLike, compiler: Any, **kw: Any) -> str:
    subject = compiler.process(element.subject, **kw)
    pattern = compiler.process(sa.literal(_glob(element.pattern), sa.String()), **kw)
    return f"({subject} GLOB {pattern})"


@compiles(CedarLike, "postgresql")
def _like_postgresql(element: CedarLike, compiler: Any, **kw: Any) -> str:
    subject = compiler.process(element.subject, **kw)
    pattern = compiler.process(sa.literal(_like_pattern(element.pattern), sa.String()), **kw)
    return f"({subject} LIKE {pattern} ESCAPE '!')"


@compiles(CedarLike)
def _like_other(element: CedarLike, compiler: Any, **kw: Any) -> str:
    raise sa.exc.CompileError(
        f"Cedar's like is written for sqlite and postgresql, not {compiler.dialect.name}"
    )
