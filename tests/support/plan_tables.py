"""Rows of Cedar entities as SQL tables, and the mapping a plan's filter runs through.

Each attribute whose values all have one Cedar type becomes a column (entities: the id,
typed by a mapping Attribute); a set of one element type becomes a join table with a
presence column; a record is flattened into columns per path. Parents become join tables
per type (many-to-many), or a column when `parent_columns` names the type. What does not
fit (mixed types, extension values) is left out of the mapping: a plan that reads it fails
`to_filter` with PlanUnsupported, which the caller counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from pdp.plan import values
from pdp.plan.sqlalchemy import Attribute, ParentTable, ResourceMapping, SetTable

_COUNTER = itertools.count()
_SQL_TYPES = {values.LONG: sa.BigInteger, values.STRING: sa.Text, values.BOOLEAN: sa.Boolean}


@dataclass
class RowTable:
    """SQL tables for `rows` (Cedar JSON entities of one type) and the plan mapping."""

    rows: Sequence[dict[str, Any]]
    parent_columns: Sequence[str] = ()
    metadata: sa.MetaData = field(default_factory=sa.MetaData)

    def __post_init__(self) -> None:
        prefix = f"t{next(_COUNTER)}"
        self._inserts: list[tuple[sa.Table, list[dict[str, Any]]]] = []
        columns: list[sa.Column[Any]] = [sa.Column("id", sa.Text, primary_key=True)]
        base: list[dict[str, Any]] = [{"id": row["uid"]["id"]} for row in self.rows]
        attributes: dict[str | tuple[str, ...], Any] = {}
        deferred: list[tuple[str, tuple[str, ...], str | None, list[tuple[str, Any]]]] = []
        for number, (path, found) in enumerate(_paths(self.rows)):
            kind = _scalar_kind(found.values())
            name = f"c{number}"
            if kind is not None:
                sql_type = sa.Text if kind[0] == values.ENTITY else _SQL_TYPES[kind[0]]
                columns.append(sa.Column(name, sql_type))
                for index, value in found.items():
                    base[index][name] = _stored(value)
                attributes[path] = Attribute(columns[-1], kind[1] or kind[0])
                continue
            element = _set_kind(found.values())
            if element is not None:
                columns.append(sa.Column(f"{name}_present", sa.Boolean))
                for index in found:
                    base[index][f"{name}_present"] = True
                items = [(index, item) for index, value in found.items() for item in value]
                deferred.append((name, path, element, items))
        self.table = sa.Table(prefix, self.metadata, *columns)
        self._inserts.append((self.table, base))
        for name, path, element, items in deferred:
            sql_type = _SQL_TYPES.get(element, sa.Text)
            join = sa.Table(
                f"{prefix}_{name}",
                self.metadata,
                sa.Column("key", sa.Text),
                sa.Column("value", sql_type),
            )
            rows = [{"key": self.rows[i]["uid"]["id"], "value": _stored(v)} for i, v in items]
            self._inserts.append((join, _unique(rows)))
            attributes[path] = SetTable(
                join.c.key,
                join.c.value,
                type=element,
                present=self.table.c[f"{name}_present"],
            )
        parents: dict[str, Any] = {}
        by_type: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            for parent in row.get("parents", []):
                by_type.setdefault(parent["type"], []).append(
                    {"key": row["uid"]["id"], "parent": parent["id"]}
                )
        for number, (parent_type, links) in enumerate(sorted(by_type.items())):
            join = sa.Table(
                f"{prefix}_p{number}",
                self.metadata,
                sa.Column("key", sa.Text),
                sa.Column("parent", sa.Text),
            )
            self._inserts.append((join, _unique(links)))
            parents[parent_type] = ParentTable(join.c.key, join.c.parent)
        for parent_type in self.parent_columns:  # one parent of that type per row, in a column
            if parent_type in parents and _at_most_one(self.rows, parent_type):
                name = f"parent_{parent_type.replace(':', '_')}"
                self.table.append_column(sa.Column(name, sa.Text))
                for row, record in zip(self.rows, base, strict=True):
                    ids = [p["id"] for p in row.get("parents", []) if p["type"] == parent_type]
                    record[name] = ids[0] if ids else None
                parents[parent_type] = self.table.c[name]
        self.mapping = ResourceMapping(self.table.c.id, attributes, parents)

    def load(self, connection: sa.Connection) -> None:
        # The names are new to this process (a counter), so there is nothing to look up first
        # (pysqlite keeps tables after a rollback: a reused name would fail, loudly).
        self.metadata.create_all(connection, checkfirst=False)
        for table, rows in self._inserts:
            if rows:
                connection.execute(table.insert(), [_complete(table, r) for r in rows])

    def select(self, connection: sa.Connection, where: sa.ColumnElement[bool]) -> set[str]:
        query = sa.select(self.table.c.id).where(where)
        return {row[0] for row in connection.execute(query)}


def _paths(rows: Sequence[dict[str, Any]]) -> Iterable[tuple[tuple[str, ...], dict[int, Any]]]:
    """Attribute paths -> {row index: value}; a path holding only records is also flattened."""
    found: dict[tuple[str, ...], dict[int, Any]] = {}
    level = {
        (name,): {i: r["attrs"][name] for i, r in enumerate(rows) if name in (r.get("attrs") or {})}
        for name in sorted({name for row in rows for name in row.get("attrs") or {}})
    }
    while level:
        found.update(level)
        deeper: dict[tuple[str, ...], dict[int, Any]] = {}
        for path, by_row in level.items():
            if len(path) >= 3 or not all(
                values.kind_of(v) == values.RECORD for v in by_row.values()
            ):
                continue
            for index, record in by_row.items():
                for name, inner in record.items():
                    deeper.setdefault((*path, name), {})[index] = inner
        level = deeper
    return sorted(found.items())


def _scalar_kind(found: Iterable[Any]) -> tuple[str, str | None] | None:
    kinds = set()
    for value in found:
        kind = values.kind_of(value)
        if kind in (values.LONG, values.STRING, values.BOOLEAN):
            kinds.add((kind, None))
        elif kind == values.ENTITY:
            kinds.add((values.ENTITY, values.as_entity(value)[0]))  # type: ignore[index]
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def _set_kind(found: Iterable[Any]) -> str | None:
    """The element type of sets holding one scalar or entity type ("String" when all empty)."""
    elements = []
    for value in found:
        if values.kind_of(value) != values.SET:
            return None
        elements.extend(value)
    if not elements:
        return values.STRING
    kind = _scalar_kind(elements)
    if kind is None:
        return None
    return kind[1] or kind[0]


def _stored(value: Any) -> Any:
    uid = values.as_entity(value)
    return uid[1] if uid is not None else value


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = []
    for row in rows:
        if row not in seen:
            seen.append(row)
    return seen


def _complete(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    return {column.name: row.get(column.name) for column in table.columns}


def _at_most_one(rows: Sequence[dict[str, Any]], parent_type: str) -> bool:
    return all(
        sum(1 for p in row.get("parents", []) if p["type"] == parent_type) <= 1 for row in rows
    )
