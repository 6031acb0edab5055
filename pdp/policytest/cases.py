"""Reads Cedar-level cases: principal, action, resource, context, entities, expectations."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pdp.errors import Problem
from pdp.model import EntityRef
from pdp.policytest.fixtures import (
    EntityFixture,
    Scope,
    read_context,
    read_entity_list,
    resolve_entity,
)
from pdp.policytest.model import DECISIONS, CedarCase, Location
from pdp.policytest.values import SuiteReader
from pdp.yamlsrc import YMap, kind, line_of

CASE_KEYS = (
    "name",
    "description",
    "principal",
    "action",
    "resource",
    "context",
    "entities",
    "expect",
    "determining",
    "erroring",
    "errors",
)

ActionResolver = Callable[[str], EntityRef]


@dataclass(frozen=True, slots=True)
class Context:
    """What every case of a suite is read against: names, actions and the bundle's policies."""

    scope: Scope
    resolve_action: ActionResolver
    policies: Mapping[str, str]  # bundle policy id -> kind (static, template, link)
    suite_entities: tuple[dict[str, Any], ...] = ()
    suite_context: dict[str, Any] | None = None


def read_case(
    reader: SuiteReader, items: Any, index: int, suite: str, ctx: Context
) -> CedarCase | None:
    """One entry of `cases:`."""
    item = reader.mapping(items, index, f"case {index}")
    if item is None:
        return None
    what = f"case {index}" + (f" ({item['name']!r})" if isinstance(item.get("name"), str) else "")
    if not reader.known_keys(item, CASE_KEYS, what) or not reader.required(
        item, ("principal", "action", "resource", "expect"), what
    ):
        return None
    before = len(reader.problems)
    principal = resolve_entity(reader, item, "principal", ctx.scope, "principal")
    resource = resolve_entity(reader, item, "resource", ctx.scope, "resource")
    action = read_action(reader, item, "action", ctx)
    context = read_context(reader, item, "context", ctx.scope) if "context" in item else None
    own: list[dict[str, Any]] = []
    if "entities" in item:
        own = read_entity_list(reader, item, "entities", ctx.scope, f"{what} entities") or []
    expect = read_expect(reader, item, DECISIONS)
    determining = erroring = None
    if "determining" in item:
        determining = read_policy_ids(reader, item, "determining", ctx)
    if "erroring" in item:
        erroring = read_policy_ids(reader, item, "erroring", ctx)
    errors = None
    if "errors" in item:
        errors = tuple(text for text, _ in reader.name_list(item, "errors", "errors"))
    if len(reader.problems) > before or principal is None or resource is None or action is None:
        return None
    name = item["name"] if isinstance(item.get("name"), str) and item["name"] else None
    if name is None:
        name = f"{_label(items[index]['principal'])} {action.id} {_label(item['resource'])}"
    return CedarCase(
        suite=suite,
        name=name,
        where=Location(reader.path, line_of(items, index)),
        principal=principal.uid,
        action=action,
        resource=resource.uid,
        context=context if context is not None else ctx.suite_context,
        entities=merge_entities([principal, resource], ctx.suite_entities, own),
        expect=str(expect),
        determining=determining,
        erroring=erroring,
        errors=errors,
    )


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "uid" in value:
        return str(value["uid"])
    return str(value)


def read_action(reader: SuiteReader, container: Any, key: Any, ctx: Context) -> EntityRef | None:
    """An action: a bare name (resolved against the schema's actions) or a full uid."""
    value = container[key]
    if isinstance(value, str) and value and "::" not in value:
        return ctx.resolve_action(value)
    return reader.uid(container, key, "action")


def read_expect(reader: SuiteReader, item: YMap, allowed: tuple[str, ...]) -> str | None:
    value = item["expect"]
    if isinstance(value, str) and value.lower() in allowed:
        return value.lower()
    reader.error(item, "expect", f"expect must be one of {', '.join(allowed)}, not {kind(value)}")
    return None


def read_policy_ids(
    reader: SuiteReader, item: YMap, key: str, ctx: Context
) -> frozenset[str] | None:
    """A list of bundle policy ids; unknown ids and templates are errors, with a suggestion."""
    names = reader.name_list(item, key, key)
    ok = True
    for name, line in names:
        found = ctx.policies.get(name)
        if found == "template":
            message = f"{key}: {name!r} is a template; name one of its links (links.json)"
        elif found is None:
            hint = difflib.get_close_matches(name, list(ctx.policies), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            message = f"{key}: no policy with id {name!r} in the bundle{suggestion}"
        else:
            continue
        ok = False
        reader.problems.append(Problem(reader.path, message, line))
    return frozenset(name for name, _ in names) if ok else None


def merge_entities(
    fixtures: list[EntityFixture], *layers: tuple[dict[str, Any], ...] | list[dict[str, Any]]
) -> tuple[dict[str, Any], ...]:
    """Request entities by uid: fixture entities, then suite's, then the case's (last wins)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for fixture in fixtures:
        if fixture.entity is not None:
            merged[(fixture.uid.type, fixture.uid.id)] = fixture.entity
    for layer in layers:
        for entity in layer:
            merged[(entity["uid"]["type"], entity["uid"]["id"])] = entity
    return tuple(merged.values())
