"""Limits inside request values: protobuf Structs and Cedar JSON text, walked without recursion
limits of their own, each crossing named by its path (`context.order.lines[3]`).

A `_json` text is only parsed here when counting its brackets, colons and length cannot
already prove it within the limits, so small requests pay nothing but a few `str.count` calls.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import struct_pb2

from pdp.errors import LimitExceeded
from pdp.model import Uid, uid_parts
from pdp.server.limits import Limits, over

Parents = dict[Uid, set[Uid]]  # request entities' parent links, by child


class _Over(Exception):
    """A limit crossed deep inside a value; the path is collected while unwinding."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(what)
        self.what = what
        self.name = name
        self.path: list[str] = []

    def at(self, field: str, limits: Limits) -> LimitExceeded:
        return over(field + "".join(reversed(self.path)), self.what, limits, self.name)


def _key(key: str) -> str:
    """A record key as a path step; a long one shortened (it may be what is over a limit)."""
    if len(key) > 40:
        key = key[:32] + "..."
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"


class _Budget:
    """Counts what a walk may still see (context keys)."""

    __slots__ = ("keys",)

    def __init__(self, keys: int) -> None:
        self.keys = keys


def check_struct(
    struct: struct_pb2.Struct, field: str, limits: Limits, count_keys: bool = False
) -> None:
    budget = _Budget(limits.max_context_keys if count_keys else -1)
    try:
        _walk_struct(struct, 1, limits, budget)
    except _Over as over:
        raise over.at(field, limits) from None


def _walk_struct(struct: struct_pb2.Struct, depth: int, limits: Limits, budget: _Budget) -> None:
    if depth > limits.max_depth:
        raise _Over(f"nesting depth {depth}", "max_depth")
    items = struct.fields
    if budget.keys >= 0:
        budget.keys -= len(items)
        if budget.keys < 0:
            raise _Over("the number of context keys", "max_context_keys")
    for key, value in items.items():
        try:
            if len(key) > limits.max_string_length:
                raise _Over(f"a key of {len(key)} characters", "max_string_length")
            _walk_value(value, depth, limits, budget)
        except _Over as over:
            over.path.append(_key(key))
            raise


def _walk_value(value: struct_pb2.Value, depth: int, limits: Limits, budget: _Budget) -> None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        if len(value.string_value) > limits.max_string_length:
            raise _Over(f"{len(value.string_value)} characters", "max_string_length")
    elif kind == "struct_value":
        _walk_struct(value.struct_value, depth + 1, limits, budget)
    elif kind == "list_value":
        if depth + 1 > limits.max_depth:
            raise _Over(f"nesting depth {depth + 1}", "max_depth")
        for index, item in enumerate(value.list_value.values):
            try:
                _walk_value(item, depth + 1, limits, budget)
            except _Over as over:
                over.path.append(f"[{index}]")
                raise


def check_context_json(text: str, field: str, limits: Limits) -> None:
    """LimitExceeded when a context's Cedar JSON text is over a limit."""
    document = _parse(text, field, limits, _context_text(text, limits))
    if document is not None:
        try:
            _walk_json(document, 1, limits, _Budget(limits.max_context_keys))
        except _Over as over:
            raise over.at(field, limits) from None


def check_entities_json(
    text: str, field: str, limits: Limits, parents: Parents, countable: bool
) -> None:
    """LimitExceeded when an entity list's Cedar JSON text is over a limit; its parent links
    go to `parents`. `countable`: counting alone may vouch for it (no hierarchy is needed)."""
    document = _parse(text, field, limits, countable and _entities_text(text, limits))
    if document is not None:
        try:
            _walk_entities(document, limits, parents)
        except _Over as over:
            raise over.at(field, limits) from None


def _context_text(text: str, limits: Limits) -> bool:
    """Whether counting alone proves a context text within the limits."""
    return (
        text.count("{") + text.count("[") <= limits.max_depth
        and text.count(":") <= limits.max_context_keys
        and len(text) <= limits.max_string_length
    )


def _entities_text(text: str, limits: Limits) -> bool:
    """Whether counting alone proves an entity list text within the limits.

    Every entity and every parent reference is a JSON object, so at most `max_depth`
    braces and brackets also bound the entities, their links and the hierarchy.
    """
    objects = text.count("{")
    return (
        objects + text.count("[") <= limits.max_depth
        and objects <= limits.max_entities
        and objects * objects <= limits.max_ancestors
        and len(text) <= min(limits.max_string_length, limits.max_id_length)
    )


def _parse(text: str, field: str, limits: Limits, cheap: bool) -> Any:
    """`text` parsed when the cheap counts cannot vouch for it; None when they can or when it
    is not JSON at all (Cedar reports that, saying where)."""
    if cheap:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise over(field, "nesting depth", limits, "max_depth") from None
    except ValueError:
        return None


def _walk_entities(document: Any, limits: Limits, parents: Parents) -> None:
    if not isinstance(document, list):
        return  # not an entity list: left to Cedar
    if len(document) > limits.max_entities:
        raise _Over(f"{len(document)} entities", "max_entities")
    links = sum(len(e["parents"]) for e in document if isinstance(e, dict) and _is_list(e))
    if links > limits.max_ancestors:  # every link is a pair: no need to look further
        raise _Over(f"{links} parent links", "max_ancestors")
    for index, entity in enumerate(document):
        try:
            if isinstance(entity, dict):
                _walk_entity(entity, limits, parents)
        except _Over as over:
            over.path.append(f"[{index}]")
            raise


def _is_list(entity: dict[str, Any]) -> bool:
    return isinstance(entity.get("parents"), list)


def _walk_entity(entity: dict[str, Any], limits: Limits, parents: Parents) -> None:
    ups = entity.get("parents")
    ups = ups if isinstance(ups, list) else []
    if len(ups) > limits.max_entities:
        raise _Over(f"{len(ups)} parents", "max_entities")
    uid = _uid(entity.get("uid"), ".uid", limits)
    links = {u for i, p in enumerate(ups) if (u := _uid(p, f".parents[{i}]", limits))}
    if uid is not None:
        parents.setdefault(uid, set()).update(links)
    for key, value in entity.items():
        try:
            _walk_json(value, 0 if key in ("uid", "parents") else 1, limits, _Budget(-1))
        except _Over as over:
            over.path.append(_key(key))
            raise


def _uid(value: Any, where: str, limits: Limits) -> Uid | None:
    """The (type, id) of a uid in Cedar JSON; _Over when either is too long."""
    found = uid_parts(value)
    for part, text in found.items():
        if len(text) > limits.max_id_length:
            over = _Over(f"{len(text)} characters", "max_id_length")
            over.path.append(f"{where}.{part}")
            raise over
    if len(found) == 2:
        return (found["type"], found["id"])
    return None


def _walk_json(value: Any, depth: int, limits: Limits, budget: _Budget) -> None:
    if isinstance(value, str):
        if len(value) > limits.max_string_length:
            raise _Over(f"{len(value)} characters", "max_string_length")
        return
    if isinstance(value, dict):
        if depth > limits.max_depth:
            raise _Over(f"nesting depth {depth}", "max_depth")
        if budget.keys >= 0:
            budget.keys -= len(value)
            if budget.keys < 0:
                raise _Over("the number of context keys", "max_context_keys")
        for key, item in value.items():
            try:
                if len(key) > limits.max_string_length:
                    raise _Over(f"a key of {len(key)} characters", "max_string_length")
                _walk_json(item, depth + 1, limits, budget)
            except _Over as over:
                over.path.append(_key(key))
                raise
    elif isinstance(value, list):
        if depth > limits.max_depth:
            raise _Over(f"nesting depth {depth}", "max_depth")
        for index, item in enumerate(value):
            try:
                _walk_json(item, depth + 1, limits, budget)
            except _Over as over:
                over.path.append(f"[{index}]")
                raise
