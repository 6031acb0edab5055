"""Reading Cedar's JSON expression form (EST) of residuals: structure, literals and text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, cast

import cedarpy

from pdp import errors

Expr = dict[str, Any]

BINARY = (
    "==",
    "!=",
    "in",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "+",
    "-",
    "*",
    "contains",
    "containsAll",
    "containsAny",
    "getTag",
    "hasTag",
)
UNARY = ("!", "neg", "isEmpty")
RESOURCE = "resource"


def operator(expr: Expr) -> str:
    """The one key of an EST node: its operator, or the extension function it calls."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise ValueError(f"not an expression: {expr!r}")
    return next(iter(expr))


def children(expr: Expr) -> Iterator[Expr]:
    """The sub-expressions of an EST node (never inside a `Value`)."""
    op = operator(expr)
    body = expr[op]
    if op in ("Value", "Var", "Slot"):
        return
    if op in BINARY:
        yield body["left"]
        yield body["right"]
    elif op in UNARY:
        yield body["arg"]
    elif op in (".", "has", "like"):
        yield body["left"]
    elif op == "is":
        yield body["left"]
        if "in" in body:
            yield body["in"]
    elif op == "if-then-else":
        yield body["if"]
        yield body["then"]
        yield body["else"]
    elif op == "Set":
        yield from body
    elif op == "Record":
        yield from body.values()
    elif isinstance(body, list):  # an extension function call, `unknown(...)` included
        yield from body
    else:
        raise ValueError(f"unknown expression form {op!r}")


def unknown_name(expr: Expr) -> str | None:
    """The name of an `unknown("...")` node, else None."""
    if isinstance(expr, dict) and len(expr) == 1 and isinstance(expr.get("unknown"), list):
        args = expr["unknown"]
        if len(args) == 1 and isinstance(args[0], dict) and isinstance(args[0].get("Value"), str):
            return cast(str, args[0]["Value"])  # EST JSON: checked a str just above
    return None


def is_resource(expr: Expr) -> bool:
    return unknown_name(expr) == RESOURCE


def is_closed(expr: Expr) -> bool:
    """Whether `expr` holds no unknown: Cedar can evaluate it to a value or an error."""
    return id(expr) not in open_nodes(expr)


def open_nodes(expr: Expr) -> set[int]:
    """The ids of the nodes of `expr` that hold an unknown (bottom-up, one pass)."""
    found: set[int] = set()
    stack: list[tuple[Expr, bool]] = [(expr, False)]
    while stack:
        node, visited = stack.pop()
        if visited:
            if unknown_name(node) is not None or any(id(c) in found for c in children(node)):
                found.add(id(node))
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children(node))
    return found


def literal(expr: Expr) -> Any:
    """The Cedar JSON value of a value-only expression (Value, Set, Record, extension value).

    Raises NotLiteral when `expr` needs evaluating.
    """
    op = operator(expr)
    body = expr[op]
    if op == "Value":
        return body
    if op == "Set":
        return [literal(item) for item in body]
    if op == "Record":
        return {name: literal(item) for name, item in body.items()}
    if (
        isinstance(body, list)
        and len(body) == 1
        and op not in ("unknown", "error")
        and isinstance(body[0], dict)
        and isinstance(body[0].get("Value"), str)
    ):  # how Cedar renders an extension value: decimal("1.5")
        return {"__extn": {"fn": op, "arg": body[0]["Value"]}}
    raise errors.NotLiteral(op)


def with_resource_var(expr: Any) -> Any:
    """`expr` with `unknown("resource")` written back as the variable `resource`."""
    if isinstance(expr, dict):
        if is_resource(expr):
            return {"Var": "resource"}
        if "Value" in expr and len(expr) == 1:
            return expr
        return {k: with_resource_var(v) for k, v in expr.items()}
    if isinstance(expr, list):
        return [with_resource_var(v) for v in expr]
    return expr


_BODY = re.compile(r"\bwhen\s*\{(?P<body>.*)\}\s*;\s*$", re.S)


def text(expr: Expr, limit: int = 300) -> str:
    """Cedar text of an expression (for messages); JSON when Cedar cannot render it."""
    policy = {
        "effect": "permit",
        "principal": {"op": "All"},
        "action": {"op": "All"},
        "resource": {"op": "All"},
        "conditions": [{"kind": "when", "body": with_resource_var(expr)}],
    }
    document = {"staticPolicies": {"x": policy}, "templates": {}, "templateLinks": []}
    try:
        rendered = cedarpy.policies_from_json_str(json.dumps(document))
        match = _BODY.search(rendered)
        shown = " ".join(match.group("body").split()) if match else rendered
    except (ValueError, RecursionError):
        shown = json.dumps(expr)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
