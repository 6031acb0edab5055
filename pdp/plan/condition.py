"""The condition tree of a plan: JSON-able nodes, built through constructors that simplify.

Grammar (README, "Query plans"). A condition is two-valued over one resource row: every
leaf is simply false when an attribute it reads is absent or of another kind, so a leaf
never errors; the planner has already turned Cedar's error rules into and/or/not.

    condition := {"value": true} | {"value": false}
               | {"op": "and" | "or", "args": [condition, condition, ...]}
               | {"op": "not", "args": [condition]}
               | {"op": "==" | "<" | "<=" | ">" | ">=", "args": [term, term]}
               | {"op": "has", "args": [attr]}
               | {"op": "like", "args": [term], "pattern": ["Wildcard" | {"Literal": "..."}]}
               | {"op": "is", "args": [term], "entity_type": "Type"}
               | {"op": "in", "args": [term], "entities": [{"type": ..., "id": ...}, ...]}
               | {"op": "contains" | "containsAll" | "containsAny", "args": [term, term]}
               | {"op": "isEmpty", "args": [term]}
               | {"op": "kind", "args": [term], "kind": "Long" | "String" | "Boolean" |
                                                       "Set" | "Record" | "Entity" | "EntitySet"}
               | {"op": "unsupported", "policy": id, "expression": text, "reason": text,
                  "outcome": true | false}
    term      := {"var": "resource"} | {"attr": [name, ...]} | {"value": Cedar JSON value}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pdp import errors
from pdp.plan import values

Node = dict[str, Any]

TRUE: Node = {"value": True}
FALSE: Node = {"value": False}
RESOURCE: Node = {"var": "resource"}
COMPARISONS = ("==", "<", "<=", ">", ">=")
NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def const(flag: bool) -> Node:
    return TRUE if flag else FALSE


def is_const(node: Node, flag: bool) -> bool:
    return node.get("value") is flag and "op" not in node


def key(node: Node) -> str:
    """A text of `node` for deduplication (nodes are built by the same constructors, so equal
    nodes have their keys in the same order; a miss only keeps a duplicate)."""
    return repr(node)


def and_(*args: Node) -> Node:
    return _junction("and", args, absorbing=False)


def or_(*args: Node) -> Node:
    return _junction("or", args, absorbing=True)


def _junction(op: str, args: Iterable[Node], absorbing: bool) -> Node:
    """and/or, flattened: the absorbing constant wins, the neutral one goes, duplicates go."""
    kept: dict[str, Node] = {}
    for arg in args:
        parts = arg["args"] if arg.get("op") == op else [arg]
        for part in parts:
            if is_const(part, absorbing):
                return const(absorbing)
            if is_const(part, not absorbing):
                continue
            kept.setdefault(key(part), part)
    keys = set(kept)
    for node in kept.values():  # x and not x: false; x or not x: true
        if node.get("op") == "not" and key(node["args"][0]) in keys:
            return const(absorbing)
    if not kept:
        return const(not absorbing)
    nodes = list(kept.values())
    return nodes[0] if len(nodes) == 1 else {"op": op, "args": nodes}


def not_(node: Node) -> Node:
    if is_const(node, True):
        return FALSE
    if is_const(node, False):
        return TRUE
    if node.get("op") == "not":
        inner: Node = node["args"][0]  # plan JSON: a "not" node holds one node
        return inner
    return {"op": "not", "args": [node]}


def attr(path: Iterable[str]) -> Node:
    return {"attr": list(path)}


def value(literal: Any) -> Node:
    return {"value": literal}


def leaf(op: str, *args: Node, **extra: Any) -> Node:
    """A leaf predicate; folded to a constant when its terms are all values."""
    node: Node = {"op": op, "args": list(args), **extra}
    if all("value" in a for a in args):
        folded = fold(node)
        if folded is not None:
            return const(folded)
    return node


def fold(node: Node) -> bool | None:
    """The truth of a leaf over values only; None when it cannot be worked out here."""
    try:
        return _fold(node)
    except (errors.ExtensionValue, ValueError):
        return None


def _fold(node: Node) -> bool | None:
    op = node["op"]
    items = [a["value"] for a in node["args"]]
    kinds = [values.kind_of(v) for v in items]
    if op == "kind":
        return values.has_kind(items[0], node["kind"])
    if op == "==":
        return bool(values.canonical(items[0]) == values.canonical(items[1]))
    if op in NEGATED:
        if kinds != [values.LONG, values.LONG]:
            return False
        left, right = items
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        )
    if op == "is":
        uid = values.as_entity(items[0])
        return uid is not None and uid[0] == node["entity_type"]
    if op == "in":
        uid = values.as_entity(items[0])
        return uid is not None and any(uid == (e["type"], e["id"]) for e in node["entities"])
    if op == "isEmpty":
        return kinds[0] == values.SET and not items[0]
    if op in ("contains", "containsAll", "containsAny"):
        if kinds[0] != values.SET:
            return False
        left = {values.canonical(v) for v in items[0]}
        if op == "contains":
            return values.canonical(items[1]) in left
        if kinds[1] != values.SET:
            return False
        right = {values.canonical(v) for v in items[1]}
        return right <= left if op == "containsAll" else bool(right & left)
    return None


def unsupported(policy: str, expression: str, reason: str, outcome: bool) -> Node:
    """What the planner cannot express: the rows where `expression` evaluates to `outcome`."""
    return {
        "op": "unsupported",
        "policy": policy,
        "expression": expression,
        "reason": reason,
        "outcome": outcome,
    }


def walk(node: Node) -> Iterator[Node]:
    """Every condition node of a tree, parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current.get("op") in ("and", "or", "not"):
            stack.extend(reversed(current["args"]))


class Sizer:
    """Sizes of trees that share subtrees (as T and F of one expression do), each node once.

    Nodes are kept alive with their size, so an id is never reused for another node.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[Node, int]] = {}

    def size(self, node: Node) -> int:
        found = self._known.get(id(node))
        if found is not None:
            return found[1]
        total = 1 + len(node.get("entities", ()))
        if node.get("op") in ("and", "or", "not"):
            total += sum(self.size(arg) for arg in node["args"])
        self._known[id(node)] = (node, total)
        return total
