"""Runs a plan three ways on the same rows and compares each with Cedar's own decisions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import cedarpy
import sqlalchemy as sa

from pdp.plan import Plan, PlanUnsupported
from pdp.plan.predicate import to_predicate
from pdp.plan.sqlalchemy import ResourceMapping, to_filter

ID_KEY, PARENTS_KEY = "__pdp_id", "__pdp_parents"


class Table(Protocol):
    """Rows as SQL tables: RowTable, or plan_docs.DocTable (fixed tables)."""

    @property
    def mapping(self) -> ResourceMapping: ...

    def load(self, connection: sa.Connection) -> None: ...

    def select(self, connection: sa.Connection, where: sa.ColumnElement[bool]) -> set[str]: ...


@dataclass
class Tally:
    """What a differential run compared, and every difference found."""

    plans: int = 0
    unsupported_plans: int = 0
    predicate_rows: int = 0
    sqlite_rows: int = 0
    postgres_rows: int = 0
    not_in_sql: int = 0  # plans the table's mapping cannot express (PlanUnsupported)
    refused_rows: int = 0  # rows the predicate refused (extension values, ...)
    differences: list[str] = field(default_factory=list)


def expected(
    policies: cedarpy.PolicySet,
    entities: cedarpy.Entities,
    schema: cedarpy.Schema | None,
    request: dict[str, Any],
    rows: Sequence[dict[str, Any]],
) -> dict[str, bool]:
    """Cedar's decision for each row as the request's resource, by row id."""
    requests = [{**request, "resource": row["uid"]} for row in rows]
    results = cedarpy.is_authorized_batch(requests, policies, entities, schema)
    return {
        row["uid"]["id"]: result.decision is cedarpy.Decision.Allow
        for row, result in zip(rows, results, strict=True)
    }


def as_row(entity: dict[str, Any]) -> dict[str, Any]:
    """A Cedar JSON entity as a predicate row."""
    return {
        **entity.get("attrs", {}),
        ID_KEY: entity["uid"]["id"],
        PARENTS_KEY: entity.get("parents", []),
    }


def compare(
    plan: Plan,
    rows: Sequence[dict[str, Any]],
    want: dict[str, bool],
    tally: Tally,
    where: str,
    table: Table | None = None,
    engines: Sequence[sa.Engine] = (),
    loaded: Sequence[sa.Connection] = (),
) -> None:
    """Check the plan's predicate and SQL filters against `want`; record into `tally`.

    The filter runs on `table` loaded into each of `engines` (in a transaction rolled back
    afterwards), and on each of `loaded`: connections where `table` is loaded already (see
    `loaded_into`, which lets many plans over the same rows share one load).
    """
    tally.plans += 1
    if plan.unsupported:
        tally.unsupported_plans += 1
        _must_refuse(plan, table.mapping if table is not None else None, tally, where)
        return
    predicate = to_predicate(plan, id_key=ID_KEY, parents_key=PARENTS_KEY)
    for row in rows:
        try:
            got = predicate(as_row(row))
        except PlanUnsupported:
            tally.refused_rows += 1
            continue
        tally.predicate_rows += 1
        if got != want[row["uid"]["id"]]:
            tally.differences.append(f"{where}: predicate says {got} for {row['uid']}")
    if table is None:
        return
    try:
        where_clause = to_filter(plan, table.mapping)
    except PlanUnsupported:
        tally.not_in_sql += 1
        return
    allowed = {ident for ident, ok in want.items() if ok}
    for connection in loaded:
        _select(table, connection, where_clause, len(rows), allowed, tally, where, plan)
    for engine in engines:
        with loaded_into(table, engine) as connection:
            _select(table, connection, where_clause, len(rows), allowed, tally, where, plan)


@contextmanager
def loaded_into(table: Table, engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection of `engine` with `table`'s rows loaded, in a transaction rolled back."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            table.load(connection)
            yield connection
        finally:
            transaction.rollback()


def _select(
    table: Table,
    connection: sa.Connection,
    where_clause: sa.ColumnElement[bool],
    rows: int,
    allowed: set[str],
    tally: Tally,
    where: str,
    plan: Plan,
) -> None:
    got_ids = table.select(connection, where_clause)
    name = connection.dialect.name
    if name == "sqlite":
        tally.sqlite_rows += rows
    else:
        tally.postgres_rows += rows
    if got_ids != allowed:
        tally.differences.append(
            f"{where} [{name}]: selected {sorted(got_ids)}, Cedar allows {sorted(allowed)}"
            f"\n  plan: {plan.condition}\n  sql: {_sql(where_clause, connection.dialect)}"
        )


def _sql(clause: sa.ColumnElement[bool], dialect: sa.Dialect) -> str:
    try:
        return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception as exc:  # only for the message
        return f"(cannot render: {exc})"


def _must_refuse(plan: Plan, mapping: ResourceMapping | None, tally: Tally, where: str) -> None:
    """An unsupported part is never run: both consumers refuse the plan."""
    try:
        to_predicate(plan, id_key=ID_KEY, parents_key=PARENTS_KEY)
        tally.differences.append(f"{where}: predicate accepted a plan with unsupported parts")
    except PlanUnsupported:
        pass
    if mapping is not None:
        try:
            to_filter(plan, mapping)
            tally.differences.append(f"{where}: to_filter accepted a plan with unsupported parts")
        except PlanUnsupported:
            pass
