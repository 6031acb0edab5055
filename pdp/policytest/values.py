"""Checked reading of suite values (uids, entities, contexts), collecting located problems."""

from __future__ import annotations

import re
from typing import Any

from pdp.model import EntityRef
from pdp.yamlsrc import Reader, kind, line_of, plain

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
ENTITY_KEYS = ("uid", "attrs", "parents", "tags")


class SuiteReader(Reader):
    """The shared Reader, plus the values suites and fixtures are made of."""

    def uid(self, container: Any, key: Any, what: str) -> EntityRef | None:
        """An entity uid written `Type::"id"`, `{type, id}` or `{__entity: {type, id}}`."""
        value = container[key]
        ref = uid_value(value)
        if isinstance(ref, EntityRef):
            return ref
        self.error(container, key, f"{what}: {ref}")
        return None

    def entity(self, container: Any, key: Any, what: str) -> dict[str, Any] | None:
        """An entity in Cedar's JSON form; `uid` and `parents` may also be `Type::"id"` text."""
        value = self.mapping(container, key, what)
        if value is None:
            return None
        if not self.known_keys(value, ENTITY_KEYS, what) or not self.required(
            value, ("uid",), what
        ):
            return None
        uid = self.uid(value, "uid", f"{what} uid")
        entity: dict[str, Any] = {"uid": uid.to_json() if uid else None, "attrs": {}, "parents": []}
        ok = uid is not None
        for name in ("attrs", "tags"):
            if name not in value:
                continue
            attrs = self.mapping(value, name, f"{what} {name}")
            problem = None if attrs is None else json_value_problem(attrs)
            if problem:
                self.error(value, name, f"{what} {name}: {problem}")
            if attrs is None or problem:
                ok = False
                continue
            entity[name] = plain(attrs)
        if "parents" in value:
            parents = self.sequence(value, "parents", f"{what} parents")
            ok = ok and parents is not None
            for index in range(len(parents or [])):
                parent = self.uid(parents, index, f"{what} parent")
                ok = ok and parent is not None
                if parent is not None:
                    entity["parents"].append(parent.to_json())
        return entity if ok else None

    def context(self, container: Any, key: Any, what: str) -> dict[str, Any] | None:
        value = self.mapping(container, key, what)
        if value is None:
            return None
        problem = json_value_problem(value)
        if problem:
            self.error(container, key, f"{what}: {problem}")
            return None
        return plain(value)

    def name_list(self, container: Any, key: Any, what: str) -> list[tuple[str, int | None]]:
        """A list of plain strings with their lines."""
        items = self.sequence(container, key, what)
        found: list[tuple[str, int | None]] = []
        for index, item in enumerate(items or []):
            if isinstance(item, str) and item:
                found.append((item, line_of(items, index)))
            else:
                self.error(items, index, f"{what} items must be strings, not {kind(item)}")
        return found


def uid_value(value: Any) -> EntityRef | str:
    """The EntityRef `value` denotes, or a message saying why it is not one."""
    if isinstance(value, str):
        try:
            return EntityRef.parse(value)
        except ValueError as exc:
            return str(exc)
    if isinstance(value, dict):
        inner = value.get("__entity", value) if set(value) == {"__entity"} else value
        if (
            isinstance(inner, dict)
            and set(inner) == {"type", "id"}
            and isinstance(inner["type"], str)
            and inner["type"]
            and isinstance(inner["id"], str)
        ):
            return EntityRef(inner["type"], inner["id"])
        return 'expected {type: ..., id: "..."} with string values (quote numeric ids)'
    return f'expected an entity uid like User::"alice", not {kind(value)}'


def json_value_problem(value: Any, path: str = "") -> str | None:
    """Why `value` is not a Cedar JSON value (no floats, no nulls), or None when it is."""
    where = path or "value"
    if isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            return f"{where}: {value} is outside Cedar's 64-bit Long range"
        return None
    if isinstance(value, float):
        return f'{where}: Cedar has no floats; write decimal("{value}") as a decimal extension'
    if value is None:
        return f"{where}: Cedar has no null; leave the attribute out instead"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = json_value_problem(item, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}: key {key!r} must be a string"
            problem = json_value_problem(item, f"{path}.{key}" if path else key)
            if problem:
                return problem
        return None
    return f"{where}: unsupported value {value!r}"
