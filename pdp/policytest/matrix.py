"""Expands a matrix (principals x actions x resources and a table of outcomes) into cases."""

from __future__ import annotations

from typing import Any

from pdp.policytest.cases import Context, merge_entities, read_action
from pdp.policytest.fixtures import EntityFixture, read_context, read_entity_list, resolve_entity
from pdp.policytest.model import DECISIONS, CedarCase, Location
from pdp.policytest.values import SuiteReader
from pdp.yamlsrc import YList, YMap, kind, line_of

MATRIX_KEYS = (
    "name",
    "description",
    "principals",
    "actions",
    "resources",
    "context",
    "entities",
    "expect",
)


def read_matrix(
    reader: SuiteReader, items: Any, index: int, suite: str, ctx: Context
) -> list[CedarCase]:
    """One entry of `matrices:`; the table has a row per principal, a column per action x resource.

    A row is one outcome for every column, or a list with one outcome per column, columns
    ordered action by action and, within an action, resource by resource.
    """
    matrix = reader.mapping(items, index, f"matrix {index}")
    if matrix is None:
        return []
    what = f"matrix {index}"
    required = ("name", "principals", "actions", "resources", "expect")
    if not reader.known_keys(matrix, MATRIX_KEYS, what) or not reader.required(
        matrix, required, what
    ):
        return []
    before = len(reader.problems)
    name = reader.text(matrix, "name", f"{what} name") or what
    principals = _axis(reader, matrix, "principals", lambda c, k: _entity(reader, c, k, ctx))
    actions = _axis(reader, matrix, "actions", lambda c, k: read_action(reader, c, k, ctx))
    resources = _axis(reader, matrix, "resources", lambda c, k: _entity(reader, c, k, ctx))
    context = read_context(reader, matrix, "context", ctx.scope) if "context" in matrix else None
    own: list[dict[str, Any]] = []
    if "entities" in matrix:
        own = read_entity_list(reader, matrix, "entities", ctx.scope, f"{name} entities") or []
    table = reader.mapping(matrix, "expect", f"{name} expect")
    if len(reader.problems) > before or table is None:
        return []
    columns = [(a, r) for a in actions for r in resources]
    rows = _rows(reader, table, principals, len(columns), name)
    if rows is None:
        return []
    cases = []
    for (label, principal), (outcomes, line) in zip(principals, rows, strict=True):
        for ((action_label, action), (resource_label, resource)), outcome in zip(
            columns, outcomes, strict=True
        ):
            cases.append(
                CedarCase(
                    suite=suite,
                    name=f"{name}: {label} {action_label} {resource_label}",
                    where=Location(reader.path, line),
                    principal=principal.uid,
                    action=action,
                    resource=resource.uid,
                    context=context if context is not None else ctx.suite_context,
                    entities=merge_entities([principal, resource], ctx.suite_entities, own),
                    expect=outcome,
                    matrix=name,
                )
            )
    return cases


def _entity(reader: SuiteReader, container: Any, key: Any, ctx: Context) -> EntityFixture | None:
    return resolve_entity(reader, container, key, ctx.scope, "matrix entry")


def _axis(reader: SuiteReader, matrix: YMap, key: str, read: Any) -> list[tuple[str, Any]]:
    """The labelled values of one axis: every item is a string (a name or a uid)."""
    items = reader.sequence(matrix, key, key)
    if items is None:
        return []
    if not items:
        reader.error(matrix, key, f"{key} must not be empty")
    found: list[tuple[str, Any]] = []
    labels: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, str):
            reader.error(items, index, f"{key} items must be names or uids, not {kind(item)}")
            continue
        if item in labels:
            reader.error(items, index, f"{item!r} is listed twice in {key}")
            continue
        labels.add(item)
        value = read(items, index)
        if value is not None:
            found.append((item, value))
    return found


def _rows(
    reader: SuiteReader,
    table: YMap,
    principals: list[tuple[str, Any]],
    width: int,
    name: str,
) -> list[tuple[list[str], int | None]] | None:
    """One row of outcomes per principal, in the order principals are listed."""
    before = len(reader.problems)
    labels = [label for label, _ in principals]
    for key in table:
        if key not in labels:
            reader.error(table, key, f"{name}: row {key!r} is not one of the principals {labels}")
    rows: list[tuple[list[str], int | None]] = []
    for label in labels:
        if label not in table:
            reader.error(table, None, f"{name}: no row for principal {label!r}")
            continue
        value = table[label]
        line = line_of(table, label)
        if isinstance(value, str):
            outcomes = [value] * width
        elif isinstance(value, YList):
            outcomes = list(value)
            if len(outcomes) != width:
                reader.error(
                    table,
                    label,
                    f"{name}: row {label!r} has {len(outcomes)} outcomes, expected "
                    f"{width} (one per action x resource)",
                )
                continue
        else:
            reader.error(table, label, f"{name}: row {label!r} must be an outcome or a list")
            continue
        words = [o.lower() if isinstance(o, str) else o for o in outcomes]
        bad = [o for o in words if o not in DECISIONS]
        if bad:
            reader.error(
                table,
                label,
                f"{name}: row {label!r}: {kind(bad[0])} is not one of {', '.join(DECISIONS)}",
            )
            continue
        rows.append((words, line))
    return rows if len(reader.problems) == before else None
