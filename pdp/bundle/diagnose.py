"""Locates and explains what cedarpy refuses without a position: policies, schema, entities."""

from __future__ import annotations

import json
import re
from typing import Any

import cedarpy

from pdp.bundle.loader import SourceFile
from pdp.bundle.locate import (
    json_array_item_lines,
    line_of_token,
    parser_hazard,
    position,
    split_statements,
)
from pdp.errors import Problem
from pdp.model import is_action_type, uid_text

_BACKTICKED = re.compile(r"`([^`]+)`")
_JSON_POSITION = re.compile(r" at line (\d+) column (\d+)$")


def parser_hazard_problem(source: SourceFile, schema: bool = False) -> Problem | None:
    """A problem when Cedar text would crash cedarpy's parser (see locate.parser_hazard)."""
    hazard = parser_hazard(source.text, schema)
    if hazard is None:
        return None
    line, column = position(source.text, hazard[0])
    what = "schema" if schema else "policy"
    return Problem(source.path, f"invalid {what}: {hazard[1]}", line, column)


def locate_parse_errors(source: SourceFile, whole_error: str) -> list[Problem]:
    """Blame the statements that fail on their own; fall back to the file."""
    located: list[Problem] = []
    for statement in split_statements(source.text):
        try:
            cedarpy.policies_to_json_str(statement.text)
        except ValueError as exc:
            located.append(
                Problem(source.path, f"invalid policy: {exc}", statement.line, statement.column)
            )
    return located or [Problem(source.path, f"invalid policy: {whole_error}")]


def locate_schema_error(source: SourceFile, message: str) -> tuple[str, int | None, int | None]:
    """The message and where it points: serde's position for JSON, else a best guess."""
    if (match := _JSON_POSITION.search(message)) is not None:
        return message[: match.start()], int(match.group(1)), int(match.group(2))
    if message.startswith("error parsing schema") and not source.path.endswith(".json"):
        # A syntax error (or a name declared twice) is in the first declaration that makes
        # the text up to it fail to parse; later declarations only add unresolved names.
        end = 0
        for declaration in split_statements(source.text, nested=True):
            end = source.text.index(declaration.text, end) + len(declaration.text)
            try:
                cedarpy.Schema.from_str(source.text[:end])
            except ValueError as exc:
                if str(exc).startswith("error parsing schema"):
                    return message, declaration.line, None
        return message, None, None
    for token in [*_BACKTICKED.findall(message), message.rsplit(": ", 1)[-1]]:
        for candidate in (token.strip(), token.strip().rsplit("::", 1)[-1].strip('"')):
            if candidate and (line := line_of_token(source.text, candidate)) is not None:
                return message, line, None
    return message, None, None


def locate_entity_errors(
    source: SourceFile, schema: cedarpy.Schema | None, whole_error: str
) -> list[Problem]:
    """Blame each entity that fails on its own, with a hint at what the schema rejects."""
    located: list[Problem] = []
    items = json_list(source, located)
    if items is None:
        return located
    lines = json_array_item_lines(source.text)
    for index, item in enumerate(items):
        try:
            cedarpy.Entities.from_json_str(json.dumps([item]), schema)
        except ValueError as exc:
            message = f"entity {_uid_text(item)}: {exc}{_entity_hint(item, schema)}"
            located.append(Problem(source.path, message, _item_line(lines, index)))
    located += duplicate_entities(source, items)
    return located or [Problem(source.path, f"invalid entities: {whole_error}")]


def duplicate_entities(source: SourceFile, items: list[Any]) -> list[Problem]:
    """A problem for each repeated entity uid, on its line (cedarpy accepts exact repeats)."""
    first: dict[str, int] = {}
    repeated: list[tuple[str, int, int]] = []
    for index, item in enumerate(items):
        uid = _uid_text(item)
        if uid == "(no uid)":
            continue
        earlier = first.setdefault(uid, index)
        if earlier != index:
            repeated.append((uid, earlier, index))
    if not repeated:  # the common case: no need to locate anything
        return []
    lines = json_array_item_lines(source.text)
    problems: list[Problem] = []
    for uid, earlier, index in repeated:
        where = f" (first at line {lines[earlier]})" if earlier < len(lines) else ""
        message = f"entity {uid}: duplicate entity uid{where}"
        problems.append(Problem(source.path, message, _item_line(lines, index)))
    return problems


def _item_line(lines: list[int], index: int) -> int | None:
    return lines[index] if index < len(lines) else None


def _entities_parse(items: list[Any], schema: cedarpy.Schema | None) -> bool:
    try:
        cedarpy.Entities.from_json_str(json.dumps(items), schema)
    except ValueError:
        return False
    return True


_ENTITY_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*")


def _entity_hint(item: Any, schema: cedarpy.Schema | None) -> str:
    """Which part of an entity the schema rejects, found by probing variants of the entity.

    cedarpy reports only "entity does not conform to the schema", never which attribute.
    """
    if schema is None or not isinstance(item, dict) or not _entities_parse([item], None):
        return ""
    uid = item["uid"].get("__entity", item["uid"])
    entity_type = uid["type"]
    if _ENTITY_TYPE.fullmatch(entity_type) and not is_action_type(entity_type):
        probe = f"permit (principal, action, resource) when {{ principal is {entity_type} }};"
        result = cedarpy.validate_policies(probe, schema)
        if any("unrecognized entity type" in e.error for e in result.errors):
            return f" (entity type {entity_type} is not declared in the schema)"
    attrs, parents = item.get("attrs") or {}, item.get("parents") or []
    hints: list[str] = []
    # Attributes are probed without parents, parents with the rejected attributes left out,
    # so that one fault does not hide the other.
    fixed = dict(attrs)
    for name in attrs:
        hint, replacement = _attribute_hint(item, attrs, name, entity_type, schema)
        if hint:
            hints.append(hint)
            if replacement is _REMOVE:
                del fixed[name]
            else:
                fixed[name] = replacement
    if not _entities_parse([{**item, "attrs": fixed, "parents": []}], schema):
        hints.append("a required attribute may be missing, or several attributes are wrong")
    else:
        hints += [
            f"the schema does not allow {_uid_text({'uid': parent})} as a parent of {entity_type}"
            for parent in parents
            if not _entities_parse([{**item, "attrs": fixed, "parents": [parent]}], schema)
        ]
    return f" ({'; '.join(hints)})" if hints else ""


_REMOVE = object()
_TYPE_PROBES: tuple[tuple[str, type, Any], ...] = (
    ("a String", str, ""),
    ("a Boolean", bool, False),
    ("a Long", int, 0),
    ("a Set", list, []),
)


def _attribute_hint(
    item: dict[str, Any],
    attrs: dict[str, Any],
    name: str,
    entity_type: str,
    schema: cedarpy.Schema,
) -> tuple[str, Any]:
    """Why the schema rejects attribute `name` ("" when it does not) and a value it accepts."""
    for expected, python_type, value in _TYPE_PROBES:
        if _entities_parse([{**item, "attrs": {**attrs, name: value}, "parents": []}], schema):
            if type(attrs[name]) is python_type:  # the value has the accepted type already
                return "", None
            return f"attribute `{name}`: the schema expects {expected}", value
    if _entities_parse([{**item, "attrs": _without(attrs, name), "parents": []}], schema):
        return (
            f"attribute `{name}`: not declared for {entity_type} in the schema,"
            " or a value of the wrong type"
        ), _REMOVE
    return "", None


def _without(attrs: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if key != name}


def _uid_text(item: Any) -> str:
    """The uid of an entity item, for messages."""
    text = uid_text(item.get("uid")) if isinstance(item, dict) else None
    return text or "(no uid)"


def json_list(source: SourceFile, problems: list[Problem]) -> list[Any] | None:
    """The JSON array in `source`, or None with the problem (syntax error, not an array)."""
    try:
        items = json.loads(source.text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(source.path, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno))
        return None
    except RecursionError:
        problems.append(Problem(source.path, "invalid JSON: nested too deeply", 1))
        return None
    if not isinstance(items, list):
        problems.append(Problem(source.path, "must be a JSON array", 1))
        return None
    return items
