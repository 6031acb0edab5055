"""Duplicate keys in JSON text: found cheaply, and named by where they are.

JSON text with a key twice (`{"a": 1, "a": 2}`) means different things to different parsers;
Cedar silently keeps one of them in a context. pdp refuses such text instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """The first object found with a key twice: its path (`.order.lines[3]`) and the key."""

    path: str
    key: str

    @property
    def message(self) -> str:
        return (
            f"duplicate key {json.dumps(self.key, ensure_ascii=False)}: a key may appear once "
            "in an object (parsers disagree on which value counts)"
        )


class _Found(Exception):
    pass


class _Marker:
    """Stands in for the object holding the duplicate, so a walk can find where it is."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def find_duplicate(text: str) -> DuplicateKey | None:
    """The first duplicate key in `text`; None when there is none or `text` is not JSON.

    Text with fewer than two colons holds at most one key and is not parsed at all.
    """
    if text.count(":") < 2:
        return None
    try:
        _REFUSING.decode(text)
    except _Found:
        return _locate(_MARKING.decode(text))
    except (ValueError, RecursionError):  # not JSON: the parser behind reports it, located
        return None
    return None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Found
    return result


def _mark_duplicates(pairs: list[tuple[str, Any]]) -> Any:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            return _Marker(key)
        result[key] = value
    return result


# Built once: `json.loads(text, object_pairs_hook=...)` builds a decoder on every call, which
# cost more than parsing a small context. Decoders keep no state between calls.
_REFUSING = json.JSONDecoder(object_pairs_hook=_refuse_duplicates)
_MARKING = json.JSONDecoder(object_pairs_hook=_mark_duplicates)


def walk(document: Any) -> Iterator[tuple[str, Any]]:
    """Every value of a parsed JSON document with its path (`.key`, `["odd key"]`, `[0]`; ""
    for the document), depth first in document order, a dict before its members; without
    recursion (the text may nest deeply)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            items = [(f"{path}{_step(k)}", v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(items))


def _locate(document: Any) -> DuplicateKey | None:
    """Where the first marker is."""
    for path, value in walk(document):
        if isinstance(value, _Marker):
            return DuplicateKey(path, value.key)
    return None


def _step(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"
