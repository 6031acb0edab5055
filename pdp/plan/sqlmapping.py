"""How a query plan's resources map to SQL tables: columns, typed attributes, join tables."""

from __future__ import annotations

from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from pdp.plan import values

SCALARS = (values.LONG, values.STRING, values.BOOLEAN)


@dataclass(frozen=True)
class Attribute:
    """A column with its Cedar type given: "Long", "String", "Boolean" or an entity type
    (the column then holds the entity's id)."""

    column: ColumnElement[Any]
    type: str


@dataclass(frozen=True)
class SetTable:
    """A set attribute kept in a join table: one row (`key` = resource id, `value`) per element.

    `type` is the elements' Cedar type (as for Attribute; default: from `value`'s SQL type).
    `present` is a boolean column of the resource's table saying whether the attribute is
    there at all (NULL or false: absent); None: every resource has it.
    """

    key: ColumnElement[Any]
    value: ColumnElement[Any]
    type: str | None = None
    present: ColumnElement[Any] | None = None


@dataclass(frozen=True)
class ParentTable:
    """Parents of one entity type kept in a join table (many-to-many)."""

    key: ColumnElement[Any]  # the resource's id
    parent: ColumnElement[Any]  # the parent's id


MappedAttribute = ColumnElement[Any] | Attribute | SetTable


@dataclass(frozen=True)
class ResourceMapping:
    """Where the resources of a plan live.

    `id`: the resource id column. `attributes`: attribute name (or a tuple path into a
    record attribute) -> column, Attribute or SetTable. `parents`: entity type -> the column
    holding the resource's one parent of that type, or a ParentTable. Parent types not
    listed are taken to have no parents; the hierarchy above the parents comes from the
    bundle's entities, folded into the plan.
    """

    id: ColumnElement[Any]
    attributes: AbcMapping[str | tuple[str, ...], MappedAttribute] = field(default_factory=dict)
    parents: AbcMapping[str, ColumnElement[Any] | ParentTable] = field(default_factory=dict)
