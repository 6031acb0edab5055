"""YAML read with line numbers, and a small reader that reports every shape problem by line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from pdp.errors import Problem

T = TypeVar("T")


class LineDict(dict):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A YAML sequence that remembers its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers; duplicate keys are errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        self.flatten_mapping(node)
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_sequence)


def load(text: str) -> Any:
    """Parse YAML text; raise ValueError with a 1-based `line` attribute on bad YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        error = ValueError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}")
        error.line = mark.line + 1 if mark is not None else None  # type: ignore[attr-defined]
        raise error from None
    except RecursionError:  # PyYAML composes nested collections recursively
        error = ValueError("invalid YAML: nested too deeply")
        error.line = None  # type: ignore[attr-defined]
        raise error from None


class Reader:
    """Reads one YAML mapping for one config section; each problem is recorded, never raised."""

    def __init__(
        self, node: Any, where: str, problems: list[Problem], file: str, line: int | None = None
    ) -> None:
        self.file = file
        self.where = where
        self.problems = problems
        self.line = line if line is not None else getattr(node, "line", None)
        self.ok = isinstance(node, dict)
        self.node: dict[str, Any] = node if isinstance(node, dict) else {}
        if not self.ok:
            self.error(f"{where} must be a mapping")

    def error(self, message: str, key: str | None = None) -> None:
        self.problems.append(Problem(self.file, message, self.line_of(key)))

    def line_of(self, key: str | None) -> int | None:
        lines = getattr(self.node, "key_lines", {})
        return lines.get(key, self.line) if key is not None else self.line

    def only(self, *allowed: str) -> None:
        """Every key not in `allowed` is an error: a typo must never pass silently."""
        for key in self.node:
            if key not in allowed:
                hint = ", ".join(allowed)
                self.error(f"{self._name(key)}: unknown key (allowed: {hint})", key)

    def has(self, key: str) -> bool:
        return key in self.node

    def child(self, key: str) -> Reader:
        """The mapping under `key` (an empty one when absent)."""
        if key not in self.node:
            return Reader(LineDict(), self._name(key), [], self.file, self.line)
        return Reader(self.node[key], self._name(key), self.problems, self.file, self.line_of(key))

    def string(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            self.error(f"{self._name(key)} must be a non-empty string", key)
            return default
        return value

    def number(self, key: str, default: float, minimum: float = 0, maximum: float = 1e9) -> float:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(f"{self._name(key)} must be a number", key)
            return default
        if not minimum <= value <= maximum:
            self.error(f"{self._name(key)} must be between {minimum} and {maximum}", key)
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(f"{self._name(key)} must be true or false", key)
            return default
        return value

    def strings(self, key: str, required: bool = False, single_ok: bool = True) -> list[str]:
        """A list of non-empty strings; a single string is a list of one when `single_ok`."""
        value = self._get(key, required)
        if value is None:
            return []
        if isinstance(value, str) and single_ok:
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(f"{self._name(key)} must be a list of non-empty strings", key)
            return []
        if required and not value:
            self.error(f"{self._name(key)} must not be empty", key)
        return list(value)

    def items(self, key: str, required: bool = False) -> list[tuple[Any, int | None]]:
        """The items of the list under `key`, each with its line."""
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(f"{self._name(key)} must be a list", key)
            return []
        lines = getattr(value, "item_lines", [])
        return [(item, lines[i] if i < len(lines) else self.line) for i, item in enumerate(value)]

    def parsed(self, key: str, parse: Callable[[Any], T], required: bool = False) -> T | None:
        """`parse(value)`, its ValueError reported against `key`."""
        value = self._get(key, required)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            self.error(f"{self._name(key)}: {exc}", key)
            return None

    def _get(self, key: str, required: bool) -> Any:
        value = self.node.get(key)
        if value is None and required and self.ok:
            self.error(f"{self._name(key)} is required", key if key in self.node else None)
        return value

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else str(key)
