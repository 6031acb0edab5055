"""`pdp plan --sql`: tables and a ResourceMapping from flags, and the filter as dialect SQL."""

from __future__ import annotations

import argparse
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.dialects.sqlite import pysqlite

from pdp.plan import Plan
from pdp.plan.sqlalchemy import Attribute, ParentTable, ResourceMapping, SetTable, to_filter

_DIALECTS = {"sqlite": pysqlite.dialect, "postgresql": psycopg.dialect}
_SQL_TYPES = {"Long": sa.BigInteger, "String": sa.Text, "Boolean": sa.Boolean}


def mapping_from_args(args: argparse.Namespace) -> ResourceMapping:
    """The mapping the flags describe; ValueError naming the flag for a malformed one."""
    metadata = sa.MetaData()
    columns: dict[str, sa.Column[Any]] = {args.id_column: sa.Column(args.id_column, sa.Text)}
    attributes: dict[str | tuple[str, ...], Any] = {}
    for text in args.column:
        name, column, cedar_type = _split(text, "--column", "ATTR=COLUMN:TYPE")
        columns.setdefault(column, sa.Column(column, _SQL_TYPES.get(cedar_type, sa.Text)))
        attributes[name] = Attribute(columns[column], cedar_type)
    parents: dict[str, Any] = {}
    for text in args.parent:
        parent_type, column = _pair(text, "--parent", "TYPE=COLUMN")
        columns.setdefault(column, sa.Column(column, sa.Text))
        parents[parent_type] = columns[column]
    presence: list[tuple[str, str, str, str, str, str | None]] = []
    for text in args.set_table:
        name, rest = _pair(text, "--set-table", "ATTR=TABLE:KEY:VALUE:TYPE[:PRESENT]")
        parts = rest.split(":")
        if len(parts) not in (4, 5) or not all(parts):
            raise ValueError(f"--set-table {text!r}: expected ATTR=TABLE:KEY:VALUE:TYPE[:PRESENT]")
        present = parts[4] if len(parts) == 5 else None
        if present is not None:
            columns.setdefault(present, sa.Column(present, sa.Boolean))
        presence.append((name, parts[0], parts[1], parts[2], parts[3], present))
    table = sa.Table(args.table, metadata, *columns.values())
    for name, join, key, value, cedar_type, present in presence:
        joined = sa.Table(
            join,
            metadata,
            sa.Column(key, sa.Text),
            sa.Column(value, _SQL_TYPES.get(cedar_type, sa.Text)),
        )
        attributes[name] = SetTable(
            joined.c[key],
            joined.c[value],
            type=cedar_type,
            present=table.c[present] if present else None,
        )
    for text in args.parent_table:
        parent_type, rest = _pair(text, "--parent-table", "TYPE=TABLE:KEY:PARENT")
        parts = rest.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"--parent-table {text!r}: expected TYPE=TABLE:KEY:PARENT")
        joined = sa.Table(
            parts[0], metadata, sa.Column(parts[1], sa.Text), sa.Column(parts[2], sa.Text)
        )
        parents[parent_type] = ParentTable(joined.c[parts[1]], joined.c[parts[2]])
    return ResourceMapping(table.c[args.id_column], attributes, parents)


def render(plan: Plan, mapping: ResourceMapping, dialect: str, literal: bool) -> tuple[str, Any]:
    """The WHERE condition on one line, and its parameters (none when `literal`).

    Parameters are what the dialect's driver takes: a list for SQLite's `?`, a dict for
    psycopg's `%(name)s`. PlanUnsupported when the mapping cannot express the plan.
    """
    where = to_filter(plan, mapping)
    # Compiled inside `SELECT 1 FROM <table> WHERE ...`, so that join-table subqueries refer
    # to the outer row, as they do in the application's own query.
    query: sa.Select[Any] = (
        sa.select(sa.literal_column("1")).select_from(mapping.id.table).where(where)
    )
    options = {"literal_binds": True} if literal else {"render_postcompile": True}
    compiled = query.compile(dialect=_DIALECTS[dialect](), compile_kwargs=options)
    _, found, condition = str(compiled).partition(" \nWHERE ")
    if not found:
        raise AssertionError(f"no WHERE in {compiled}")
    text = " ".join(condition.split())
    if literal:
        return text, None
    params = compiled.construct_params()
    if compiled.positional:
        return text, [params[name] for name in compiled.positiontup or ()]
    return text, dict(params)


def _pair(text: str, flag: str, shape: str) -> tuple[str, str]:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"{flag} {text!r}: expected {shape}")
    return name, rest


def _split(text: str, flag: str, shape: str) -> tuple[str, str, str]:
    name, rest = _pair(text, flag, shape)
    column, sep, cedar_type = rest.rpartition(":")
    if not sep or not column or not cedar_type:
        raise ValueError(
            f"{flag} {text!r}: expected {shape} (TYPE: Long, String, Boolean or an entity type)"
        )
    return name, column, cedar_type
