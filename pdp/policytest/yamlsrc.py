"""YAML loading that remembers where each mapping key and list item came from."""

from __future__ import annotations

from typing import Any

import yaml

from pdp.errors import Problem, SuiteError


class YMap(dict):
    """A YAML mapping: `line` is where it starts, `lines[key]` where each key is written."""

    line: int
    lines: dict[Any, int]


class YList(list):
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
    return result


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> YList:
    result = YList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def load_yaml(path: str, text: str) -> Any:
    """Parse one YAML document; raise SuiteError naming path:line on a syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        message = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        raise SuiteError([Problem(path, f"invalid YAML: {message}", line, column)]) from None
    except yaml.YAMLError as exc:
        raise SuiteError([Problem(path, f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise SuiteError([Problem(path, "invalid YAML: nested too deeply", 1)]) from None


def line_of(container: Any, key: Any = None) -> int | None:
    """The line of `key` (a mapping key or list index) in `container`, else of the container."""
    if isinstance(container, YMap) and key is not None and key in container.lines:
        return container.lines[key]
    if isinstance(container, YList) and isinstance(key, int) and 0 <= key < len(container.lines):
        return container.lines[key]
    return getattr(container, "line", None)
