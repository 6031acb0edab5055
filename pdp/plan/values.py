"""Cedar values as plans carry them (Cedar JSON), their kinds, and canonical forms for equality."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pdp import errors
from pdp.model import EntityRef

LONG, STRING, BOOLEAN, SET, RECORD, ENTITY, ENTITY_SET, EXTENSION = (
    "Long",
    "String",
    "Boolean",
    "Set",
    "Record",
    "Entity",
    "EntitySet",
    "Extension",
)
KINDS = (LONG, STRING, BOOLEAN, SET, RECORD, ENTITY, ENTITY_SET)
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def entity_json(type_: str, id_: str) -> dict[str, Any]:
    """The Cedar JSON form of an entity uid as a value."""
    return {"__entity": {"type": type_, "id": id_}}


def as_entity(value: Any) -> tuple[str, str] | None:
    """(type, id) when `value` is an entity uid (`{"__entity": ...}` or an EntityRef)."""
    if isinstance(value, EntityRef):
        return (value.type, value.id)
    if isinstance(value, Mapping) and len(value) == 1 and "__entity" in value:
        inner = value["__entity"]
        if isinstance(inner, Mapping):
            kind, ident = inner.get("type"), inner.get("id")
            if isinstance(kind, str) and isinstance(ident, str):
                return (kind, ident)
    return None


def is_extension(value: Any) -> bool:
    return isinstance(value, Mapping) and "__extn" in value


def kind_of(value: Any) -> str:
    """The Cedar kind of a Cedar JSON value; ValueError for what is no Cedar value."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise ValueError(f"{value} is out of range for a Cedar Long")
        return LONG
    if isinstance(value, str):
        return STRING
    if as_entity(value) is not None:
        return ENTITY
    if is_extension(value):
        return EXTENSION
    if isinstance(value, Mapping):
        return RECORD
    if isinstance(value, list | tuple | set | frozenset):
        return SET
    raise ValueError(f"{type(value).__name__} is not a Cedar value")


def has_kind(value: Any, kind: str) -> bool:
    """Whether `value` is of `kind` (ENTITY_SET: a set whose elements are all entities)."""
    found = kind_of(value)
    if kind == ENTITY_SET:
        return found == SET and all(kind_of(v) == ENTITY for v in value)
    return found == kind


def canonical(value: Any) -> Any:
    """A hashable form of a Cedar value such that Cedar's `==` is Python's `==` on it.

    Raises ExtensionValue for extension values: their equality (decimal, ip, datetime) is
    Cedar's own and is not reproduced here.
    """
    kind = kind_of(value)
    if kind == EXTENSION:
        raise errors.ExtensionValue(f"extension value {value['__extn']!r}")
    if kind == ENTITY:
        return (ENTITY, *as_entity(value))  # type: ignore[misc]
    if kind == SET:
        return (SET, frozenset(canonical(v) for v in value))
    if kind == RECORD:
        return (RECORD, frozenset((k, canonical(v)) for k, v in value.items()))
    return (kind, value)


def entity_uids(value: Any) -> list[tuple[str, str]] | None:
    """The uids of an entity or a set of entities; None when it is neither (Cedar: an error)."""
    one = as_entity(value)
    if one is not None:
        return [one]
    if kind_of(value) == SET:
        uids = [as_entity(v) for v in value]
        if all(u is not None for u in uids):
            return uids  # type: ignore[return-value]
    return None
