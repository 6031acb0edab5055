"""A plan as a plain-Python predicate over dict rows, for lists held in memory."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pdp import errors
from pdp.errors import PlanUnsupported
from pdp.model import EntityRef, uid_of
from pdp.plan import condition as c
from pdp.plan import values
from pdp.plantypes import Plan

Row = Mapping[str, Any]
_ABSENT = object()


def to_predicate(
    plan: Plan, *, id_key: str | None = None, parents_key: str | None = None
) -> Callable[[Row], bool]:
    """`row -> bool`: whether the plan allows the resource `row` describes.

    A row maps attribute names to Cedar values as Python values: int (Long), str, bool,
    list/set/tuple (Set), dict (record), `EntityRef` or `{"__entity": {...}}` (entity).
    `id_key` names the key holding the resource's id and `parents_key` the one holding its
    parents (uids), when the plan needs them; neither is an attribute. Raises
    PlanUnsupported when the plan has unsupported parts or needs a key not given, and, when
    a row is evaluated, for what a row holds that the plan cannot decide exactly (an
    extension value, an attribute read through an entity-typed attribute).
    """
    if plan.unsupported:
        parts = "; ".join(f"{p.policy}: {p.expression} ({p.reason})" for p in plan.unsupported)
        raise PlanUnsupported(f"the plan has unsupported parts: {parts}")
    needs_id, needs_parents = _needs(plan.condition)
    if needs_id and id_key is None:
        raise PlanUnsupported("the plan compares the resource itself: give id_key")
    if needs_parents and parents_key is None:
        raise PlanUnsupported("the plan asks for the resource's parents: give parents_key")
    reserved = {k for k in (id_key, parents_key) if k is not None}
    condition = plan.condition

    def predicate(row: Row) -> bool:
        return _Row(row, plan.resource_type, id_key, parents_key, reserved).holds(condition)

    return predicate


def _needs(condition: c.Node) -> tuple[bool, bool]:
    needs_id = needs_parents = False
    for node in c.walk(condition):
        if any(arg.get("var") == "resource" for arg in node.get("args", ())):
            needs_id = True
            needs_parents = needs_parents or node["op"] == "in"
    return needs_id, needs_parents


class _Row:
    """One row being decided."""

    def __init__(
        self,
        row: Row,
        resource_type: str,
        id_key: str | None,
        parents_key: str | None,
        reserved: set[str],
    ) -> None:
        self._row = row
        self._type = resource_type
        self._id_key = id_key
        self._parents_key = parents_key
        self._reserved = reserved

    def holds(self, node: c.Node) -> bool:
        op = node.get("op")
        if op is None:
            return node["value"] is True
        if op in ("and", "or"):
            results = [self.holds(arg) for arg in node["args"]]  # all: so refusals surface
            return all(results) if op == "and" else any(results)
        if op == "not":
            return not self.holds(node["args"][0])
        if op == "has":
            return self._term(node["args"][0]) is not _ABSENT
        args = [self._term(arg) for arg in node["args"]]
        if any(arg is _ABSENT for arg in args):
            return False
        return _LEAVES[op](self, node, *args)

    # --- terms ---------------------------------------------------------------------------

    def _term(self, term: c.Node) -> Any:
        if "value" in term:
            return term["value"]
        if term.get("var") == "resource":
            return values.entity_json(self._type, self._id())
        value: Any = _Attributes(self._row, self._reserved)
        for name in term["attr"]:
            if values.as_entity(value) is not None:
                raise PlanUnsupported(
                    f"attribute {name!r} of the entity {value!r}: entity data is not in the row"
                )
            if not isinstance(value, Mapping | _Attributes) or values.is_extension(value):
                return _ABSENT
            value = value.get(name, _ABSENT)
            if value is _ABSENT:
                return _ABSENT
        values.kind_of(value)  # refuses what is no Cedar value, such as a float
        return value

    def _id(self) -> str:
        assert self._id_key is not None
        ident = self._row[self._id_key]
        if not isinstance(ident, str):
            raise ValueError(f"row[{self._id_key!r}]: an id is a string, not {ident!r}")
        return ident

    def parents(self) -> set[tuple[str, str]]:
        assert self._parents_key is not None
        found = set()
        for parent in self._row.get(self._parents_key) or ():
            if isinstance(parent, str):
                parent = EntityRef.parse(parent)
            uid = values.as_entity(parent) or uid_of(parent)
            if uid is None:
                raise ValueError(f"row[{self._parents_key!r}]: {parent!r} is not an entity uid")
            found.add(uid)
        return found

    @property
    def resource_uid(self) -> tuple[str, str]:
        return (self._type, self._id())


class _Attributes:
    """A row's attributes: the row without its id and parents keys."""

    def __init__(self, row: Row, reserved: set[str]) -> None:
        self._row = row
        self._reserved = reserved

    def get(self, name: str, default: Any) -> Any:
        return default if name in self._reserved else self._row.get(name, default)


def _canonical(value: Any) -> Any:
    try:
        return values.canonical(value)
    except errors.ExtensionValue as exc:
        raise PlanUnsupported(f"{exc}: Cedar's own equality for it is not reproduced") from None


def _eq(row: _Row, node: c.Node, left: Any, right: Any) -> bool:
    return bool(_canonical(left) == _canonical(right))


def _compare(row: _Row, node: c.Node, left: Any, right: Any) -> bool:
    for side in (left, right):
        if values.is_extension(side):
            raise PlanUnsupported("comparison of extension values")
    if values.kind_of(left) != values.LONG or values.kind_of(right) != values.LONG:
        return False
    op = node["op"]
    return bool(
        {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    )


def _like(row: _Row, node: c.Node, subject: Any) -> bool:
    if values.kind_of(subject) != values.STRING:
        return False
    pattern = "".join(
        ".*" if part == "Wildcard" else re.escape(part["Literal"]) for part in node["pattern"]
    )
    return re.fullmatch(pattern, subject, re.S) is not None


def _is(row: _Row, node: c.Node, subject: Any) -> bool:
    uid = values.as_entity(subject)
    return uid is not None and uid[0] == node["entity_type"]


def _in(row: _Row, node: c.Node, subject: Any) -> bool:
    listed = {(e["type"], e["id"]) for e in node["entities"]}
    if node["args"][0].get("var") == "resource":
        return row.resource_uid in listed or not listed.isdisjoint(row.parents())
    uid = values.as_entity(subject)
    return uid is not None and uid in listed


def _set_items(value: Any) -> set[Any] | None:
    if values.kind_of(value) != values.SET:
        return None
    return {_canonical(item) for item in value}


def _contains(row: _Row, node: c.Node, left: Any, right: Any) -> bool:
    items = _set_items(left)
    return items is not None and _canonical(right) in items


def _contains_all(row: _Row, node: c.Node, left: Any, right: Any) -> bool:
    mine, theirs = _set_items(left), _set_items(right)
    return mine is not None and theirs is not None and theirs <= mine


def _contains_any(row: _Row, node: c.Node, left: Any, right: Any) -> bool:
    mine, theirs = _set_items(left), _set_items(right)
    return mine is not None and theirs is not None and not mine.isdisjoint(theirs)


def _is_empty(row: _Row, node: c.Node, subject: Any) -> bool:
    return values.kind_of(subject) == values.SET and not subject


def _kind(row: _Row, node: c.Node, subject: Any) -> bool:
    if values.is_extension(subject):
        return False
    return values.has_kind(subject, node["kind"])


def _unsupported(row: _Row, node: c.Node, *args: Any) -> bool:
    raise PlanUnsupported(f"{node['policy']}: {node['expression']} ({node['reason']})")


_LEAVES: dict[str, Callable[..., bool]] = {
    "==": _eq,
    "<": _compare,
    "<=": _compare,
    ">": _compare,
    ">=": _compare,
    "like": _like,
    "is": _is,
    "in": _in,
    "contains": _contains,
    "containsAll": _contains_all,
    "containsAny": _contains_any,
    "isEmpty": _is_empty,
    "kind": _kind,
    "unsupported": _unsupported,
}
