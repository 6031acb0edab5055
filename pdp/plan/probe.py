"""Evaluates the closed parts Cedar left in residuals (they error, or were not evaluated).

Cedar's partial evaluator keeps a sub-expression that does not involve the resource as it
was written when evaluating it failed (`resource.x && principal.missing`), and it does not
say whether it failed. Each such part is evaluated here by Cedar itself, in one call for
all of them: as `resource.<probe> == (part)`, whose residual holds the part's value, or
which errors exactly when the part does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cedarpy

from pdp.errors import NotLiteral
from pdp.plan import est

_PROBE_ATTR = "__pdp_plan_probe"


@dataclass(frozen=True, slots=True)
class Evaluated:
    """A closed expression's outcome: its Cedar JSON value, `error`, or `unknown` (Cedar
    answered in a form not foreseen here: the part is then reported as unsupported)."""

    value: Any = None
    error: bool = False
    unknown: bool = False


def evaluate(
    expressions: Iterable[est.Expr],
    request: dict[str, Any],
    entities: cedarpy.Entities,
    schema: cedarpy.Schema | None,
) -> dict[str, Evaluated]:
    """Outcome of each closed expression, by its canonical JSON text."""
    pending: dict[str, est.Expr] = {}
    found: dict[str, Evaluated] = {}
    for expr in expressions:
        text = key(expr)
        try:
            found[text] = Evaluated(est.literal(expr))
        except NotLiteral:
            pending[text] = expr
    if not pending:
        return found
    ids = {f"q{n}": text for n, text in enumerate(pending)}
    policies = {name: _probe_policy(pending[text]) for name, text in ids.items()}
    document = {"staticPolicies": policies, "templates": {}, "templateLinks": []}
    result = cedarpy.is_authorized_partial(
        request, cedarpy.PolicySet.from_json_str(json.dumps(document)), entities, schema
    )
    residuals = result.residuals or {}
    errors = " ".join(result.diagnostics.errors)
    for name, text in ids.items():
        found[text] = _outcome(residuals.get(name), f"policy `{name}`" in errors)
    return found


def key(expr: est.Expr) -> str:
    return json.dumps(expr, sort_keys=True, separators=(",", ":"))


def _probe_policy(expr: est.Expr) -> dict[str, Any]:
    probe = {".": {"left": {"Var": "resource"}, "attr": _PROBE_ATTR}}
    return {
        "effect": "permit",
        "principal": {"op": "All"},
        "action": {"op": "All"},
        "resource": {"op": "All"},
        "conditions": [{"kind": "when", "body": {"==": {"left": probe, "right": expr}}}],
    }


def _outcome(residual: dict[str, Any] | None, errored: bool) -> Evaluated:
    """The value in `resource.<probe> == VALUE`; an error when the policy errored instead."""
    if residual is None:
        return Evaluated(unknown=True)
    conditions = residual.get("conditions") or []
    body = conditions[0]["body"] if len(conditions) == 1 else None
    if body == {"Value": False} and errored:
        return Evaluated(error=True)
    stack = [body]
    while stack:  # the comparison sits under `true && ...` wrappers
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "==" in node and _is_probe(node["=="]["left"]):
            try:
                return Evaluated(est.literal(node["=="]["right"]))
            except NotLiteral:
                return Evaluated(unknown=True)
        if "&&" in node:
            stack.extend((node["&&"]["left"], node["&&"]["right"]))
    return Evaluated(unknown=True)


def _is_probe(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and "." in node
        and node["."].get("attr") == _PROBE_ATTR
        and est.is_resource(node["."].get("left"))
    )
