"""The SQL side of a plan's terms: typed columns, join-table sets, and boolean pieces kept
apart from their negation so that NULL never turns a Cedar `false` into SQL's unknown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from pdp.errors import PlanUnsupported
from pdp.plan import values
from pdp.plan.sqlmapping import SCALARS, Attribute, SetTable

# --- what a term is in SQL ---------------------------------------------------------------


@dataclass(frozen=True)
class ScalarTerm:
    """A scalar: a column (or the resource id) with its Cedar kind."""

    sql: ColumnElement[Any]
    kind: str  # Long, String, Boolean or Entity
    entity_type: str | None = None


@dataclass(frozen=True)
class SetTerm:
    table: SetTable
    kind: str
    entity_type: str | None
    resource_id: ColumnElement[Any]

    def presence(self) -> Sql:
        if self.table.present is None:
            return True
        return Leaf(self.table.present.is_(True))

    def rows(self, *where: ColumnElement[bool]) -> ColumnElement[bool]:
        return correlated(
            sa.exists().where(self.table.key == self.resource_id, *where), self.resource_id
        )

    def element(self) -> ScalarTerm:
        return ScalarTerm(self.table.value, self.kind, self.entity_type)


@dataclass(frozen=True)
class ValueTerm:
    value: Any


Resolved = ScalarTerm | SetTerm | ValueTerm


# --- SQL pieces before negation ----------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A SQL boolean that is NULL only when one of `nullable` is NULL; or its negation."""

    expr: ColumnElement[bool]
    nullable: tuple[ColumnElement[Any], ...] = ()
    negated: bool = False


@dataclass(frozen=True)
class Junction:
    op: str  # "and" or "or"
    parts: tuple[Sql, ...]


Sql = bool | Leaf | Junction


def any_of(parts: Iterable[Sql]) -> Sql:
    kept = tuple(p for p in parts if p is not False)
    if any(p is True for p in kept):
        return True
    return Junction("or", kept) if kept else False


def all_of(parts: Iterable[Sql]) -> Sql:
    kept = tuple(p for p in parts if p is not True)
    if any(p is False for p in kept):
        return False
    return Junction("and", kept) if kept else True


def negate(sql: Sql) -> Sql:
    if isinstance(sql, bool):
        return not sql
    if isinstance(sql, Leaf):
        return Leaf(sql.expr, sql.nullable, not sql.negated)
    parts = [negate(part) for part in sql.parts]
    return any_of(parts) if sql.op == "and" else all_of(parts)


def correlated(exists: sa.Exists, resource_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """A join-table EXISTS tied to the resource row of the enclosing query."""
    table = getattr(resource_id, "table", None)
    return exists.correlate(table) if table is not None else exists


def emit(sql: Sql) -> ColumnElement[bool]:
    """SQL for `sql`; a negated leaf reads NULL as `absent`, never as unknown."""
    if isinstance(sql, bool):
        return sa.true() if sql else sa.false()
    if isinstance(sql, Junction):
        parts = [emit(part) for part in sql.parts]
        return sa.and_(*parts) if sql.op == "and" else sa.or_(*parts)
    if not sql.negated:
        return sql.expr
    return sa.or_(*(column.is_(None) for column in sql.nullable), sa.not_(sql.expr))


# --- types and literals ------------------------------------------------------------------

NO_MATCH = object()


def typed(mapped: ColumnElement[Any] | Attribute | SetTable, path: Sequence[str]) -> ScalarTerm:
    if isinstance(mapped, Attribute):
        kind, entity_type = cedar_type(mapped.type, mapped.column, path)
        return ScalarTerm(mapped.column, kind, entity_type)
    if isinstance(mapped, SetTable):
        raise PlanUnsupported(f"attribute {dotted(path)} is a set, used as a single value")
    kind, entity_type = cedar_type(None, mapped, path)
    return ScalarTerm(mapped, kind, entity_type)


def cedar_type(
    given: str | None, column: ColumnElement[Any], path: Sequence[str]
) -> tuple[str, str | None]:
    """(kind, entity type) of a column: as given, else from its SQL type."""
    if given is not None:
        return (given, None) if given in SCALARS else (values.ENTITY, given)
    sql_type = getattr(column, "type", None)
    where = f"attribute {dotted(path)}"
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


def literal_for(column: ScalarTerm, value: Any) -> Any:
    """`value` as the column stores it, or NO_MATCH when the column can never equal it."""
    kind = values.kind_of(value)
    if kind == values.EXTENSION:
        raise PlanUnsupported("extension values (decimal, ip, datetime, duration)")
    if column.kind == values.ENTITY:
        uid = values.as_entity(value)
        return uid[1] if uid is not None and uid[0] == column.entity_type else NO_MATCH
    return value if kind == column.kind else NO_MATCH


def ids_of(listed: list[tuple[str, str]], entity_type: str | None) -> list[str]:
    return sorted({ident for kind, ident in listed if kind == entity_type})


def distinct(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def dotted(path: Sequence[str]) -> str:
    return ".".join(path)
