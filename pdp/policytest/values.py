"""Checked reading of suite values (uids, entities, contexts), collecting located problems."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pdp.errors import Problem
from pdp.model import EntityRef
from pdp.policytest.yamlsrc import YList, YMap, line_of

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
ENTITY_KEYS = ("uid", "attrs", "parents", "tags")


class Reader:
    """Reads one file's parsed YAML, recording each problem with the file and line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def error(self, container: Any, key: Any, message: str) -> None:
        self.problems.append(Problem(self.path, message, line_of(container, key)))

    def mapping(self, container: Any, key: Any, what: str) -> YMap | None:
        value = container[key]
        if isinstance(value, YMap):
            return value
        self.error(container, key, f"{what} must be a mapping, not {kind(value)}")
        return None

    def sequence(self, container: Any, key: Any, what: str) -> YList | None:
        value = container[key]
        if isinstance(value, YList):
            return value
        self.error(container, key, f"{what} must be a list, not {kind(value)}")
        return None

    def text(self, container: Any, key: Any, what: str) -> str | None:
        value = container[key]
        if isinstance(value, str) and value.strip():
            return value
        self.error(container, key, f"{what} must be a non-empty string, not {kind(value)}")
        return None

    def known_keys(self, mapping: YMap, allowed: tuple[str, ...], what: str) -> bool:
        """Report every key of `mapping` that is not in `allowed`; True when all are known."""
        ok = True
        for key in mapping:
            if key in allowed:
                continue
            ok = False
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            expected = ", ".join(allowed)
            self.error(
                mapping, key, f"unknown key {key!r} in {what}{suggestion}; expected: {expected}"
            )
        return ok

    def required(self, mapping: YMap, keys: tuple[str, ...], what: str) -> bool:
        missing = [k for k in keys if k not in mapping]
        for key in missing:
            self.error(mapping, None, f"{what} needs {key!r}")
        return not missing

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


def plain(value: Any) -> Any:
    """`value` with located containers turned into plain dicts and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def kind(value: Any) -> str:
    """A short name for the YAML type of `value`, for messages."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}" if value else "an empty string"
    return f"{type(value).__name__} {value!r}"
