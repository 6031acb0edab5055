"""YAML with its lines: the one loader and reader behind every YAML file pdp reads.

`load` gives mappings and sequences that remember where they and their items are, refuses
duplicate keys, keeps dates as the text written and turns every syntax error into one located
Problem. A `Reader` records located problems while values are read, so one pass reports them
all; a `Section` is the same for one mapping of a configuration file (routes.yaml).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar, overload

import yaml

from pdp.errors import Problem, YamlError

T = TypeVar("T")


class YMap(dict[Any, Any]):
    """A YAML mapping: `line` is where it starts, `lines[key]` where each key is written, and
    `texts[key]` a scalar value's text as written (`1.10`, `0123`, `off`: not 1.1, 83, False)."""

    line: int
    lines: dict[Any, int]
    texts: dict[Any, str]


class YList(list[Any]):
    """A YAML sequence: `line` is where it starts, `lines[i]` where item i starts."""

    line: int
    lines: list[int]


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping that repeats a key (plain PyYAML silently keeps the last one)."""


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


class _Loader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader with located containers, duplicate-key errors and dates kept as text."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> YMap:
    loader.flatten_mapping(node)
    result = YMap()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.texts = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise _DuplicateKey(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in result:
            raise _DuplicateKey(
                None,
                None,
                f"duplicate key {key!r} (first on line {result.lines[key]})",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode):
            result.texts[key] = value_node.value
    return result


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> YList:
    result = YList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def load(path: str, text: str) -> Any:
    """Parse one YAML document; YamlError with the problem located as `path:line[:column]`."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line, column = _position(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        # libyaml says "control characters", PyYAML "special characters": one wording for both.
        reason = "special characters are not allowed"
        problem = Problem(path, f"invalid YAML: {reason} (#x{code:04x})", line, column)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        if "maximum nesting depth" in message:  # libyaml's own bound
            problem = Problem(path, "invalid YAML: nested too deeply", _line(mark))
        else:
            at = mark.column + 1 if mark is not None else None
            problem = Problem(path, f"invalid YAML: {message}", _line(mark), at)
    except yaml.YAMLError as exc:
        problem = Problem(path, f"invalid YAML: {exc}")
    except RecursionError:  # PyYAML constructs nested collections recursively
        problem = Problem(path, "invalid YAML: nested too deeply", 1)
    raise YamlError([problem])


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of character `offset` of `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def line_of(container: Any, key: Any = None) -> int | None:
    """The line of `key` (a mapping key or list index) in `container`, else of the container."""
    if isinstance(container, YMap) and key is not None and key in container.lines:
        return container.lines[key]
    if isinstance(container, YList) and isinstance(key, int) and 0 <= key < len(container.lines):
        return container.lines[key]
    return getattr(container, "line", None)


@overload
def plain(value: dict[Any, Any]) -> dict[Any, Any]: ...
@overload
def plain(value: Any) -> Any: ...
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


class Reader:
    """Reads one file's parsed YAML, recording each problem with the file and line."""

    def __init__(self, path: str, problems: list[Problem] | None = None) -> None:
        self.path = path
        self.problems: list[Problem] = [] if problems is None else problems

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

    def section(self, node: Any, where: str, line: int | None = None) -> Section:
        """A reader of the mapping `node`, named `where` in messages (`routes[2]`)."""
        return Section(self, node, where, line)


class Section:
    """Reads one mapping of a configuration file by key; each problem is recorded, never raised.

    Messages name the value by its dotted place (`identity.jwt.issuers[].audiences`).
    """

    def __init__(self, reader: Reader, node: Any, where: str, line: int | None = None) -> None:
        self.reader = reader
        self.where = where
        self.line = line if line is not None else getattr(node, "line", None)
        self.ok = isinstance(node, dict)
        self.node: dict[Any, Any] = node if isinstance(node, dict) else {}
        if not self.ok:
            self.error(f"{where} must be a mapping")

    @property
    def problems(self) -> list[Problem]:
        return self.reader.problems

    def error(self, message: str, key: str | None = None) -> None:
        self.reader.problems.append(Problem(self.reader.path, message, self.line_of(key)))

    def line_of(self, key: str | None) -> int | None:
        lines = getattr(self.node, "lines", {})
        return lines.get(key, self.line) if key is not None else self.line

    def section(self, node: Any, where: str, line: int | None = None) -> Section:
        """A reader of another mapping of the same file (an item of a list read here)."""
        return Section(self.reader, node, where, line)

    def only(self, *allowed: str) -> None:
        """Every key not in `allowed` is an error: a typo must never pass silently."""
        for key in self.node:
            if key not in allowed:
                hint = ", ".join(allowed)
                self.error(f"{self._name(key)}: unknown key (allowed: {hint})", key)

    def has(self, key: str) -> bool:
        return key in self.node

    def child(self, key: str) -> Section:
        """The mapping under `key` (an empty one, whose problems go nowhere, when absent)."""
        if key not in self.node:
            return Section(Reader(self.reader.path), {}, self._name(key), self.line)
        return Section(self.reader, self.node[key], self._name(key), self.line_of(key))

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
        lines = getattr(value, "lines", [])
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

    def _name(self, key: Any) -> str:
        return f"{self.where}.{key}" if self.where else str(key)
