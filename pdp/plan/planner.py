"""Plans a question with the resource unknown, over one compiled bundle: plain data in and out."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import cedarpy

from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.errors import RequestError
from pdp.model import AuthzRequest, EntityRef
from pdp.plan import condition as c
from pdp.plan import est, probe
from pdp.plan.hierarchy import Hierarchy
from pdp.plan.translate import MAX_SIZE, Translator
from pdp.plantypes import Plan, PlanKind, PlanRequest, UnsupportedPart

MAX_PLAN_SIZE = 5 * MAX_SIZE
_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*$")
_UNKNOWN_ROUNDS = 3


def plan_resources(bundle: CompiledBundle, request: PlanRequest) -> Plan:
    """The plan for `request`; RequestError (naming the field) when the request is malformed."""
    context = _context(request)
    principal = _cedar_uid(request.principal, "principal")  # the order errors are named in
    action = _cedar_uid(request.action, "action")
    partial = {
        "principal": principal,
        "action": action,
        "context": context,
    }
    _validate(bundle, request, action)
    entities = _entities(bundle, request)
    residuals, entities = _residuals(bundle, request, partial, entities)
    hierarchy = Hierarchy(bundle, request.entities_json)
    closed = [
        expr
        for residual in residuals.values()
        if not _never_applies(residual)
        for expr in _closed_parts(residual)
    ]
    evaluated = probe.evaluate(closed, partial, entities, bundle.schema)

    order = {internal_id: n for n, internal_id in enumerate(bundle.by_internal_id)}
    permits: list[c.Node] = []
    forbids: list[c.Node] = []
    policies: list[str] = []
    for internal_id, residual in sorted(residuals.items(), key=lambda item: order[item[0]]):
        if _never_applies(residual):
            continue
        info = bundle.by_internal_id[internal_id]
        applies = Translator(info.id, request.resource_type, hierarchy, evaluated).policy(residual)
        if c.Sizer().size(applies) > MAX_SIZE:
            reason = f"its condition is over {MAX_SIZE} nodes and entities"
            applies = c.unsupported(info.id, "the whole policy", reason, True)
        if c.is_const(applies, False):
            continue
        policies.append(info.id)
        (permits if residual.get("effect") == "permit" else forbids).append(applies)
    condition = c.and_(c.or_(*permits), c.not_(c.or_(*forbids)))
    if c.Sizer().size(condition) > MAX_PLAN_SIZE:
        reason = f"the plan is over {MAX_PLAN_SIZE} nodes and entities"
        condition = c.unsupported("", "the whole plan", reason, True)
    return Plan(
        kind=_kind(condition),
        condition=condition,
        policies=tuple(policies),
        resource_type=request.resource_type,
        decision_id=engine.new_decision_id(),
        bundle_revision=bundle.revision,
        unsupported=tuple(_unsupported_parts(condition)),
    )


def _never_applies(residual: dict[str, Any]) -> bool:
    """A residual Cedar already decided: `when { false }` (most policies of a bundle)."""
    return any(
        cond["body"] == {"Value": cond["kind"] != "when"} for cond in residual.get("conditions", [])
    )


def _kind(condition: c.Node) -> PlanKind:
    if c.is_const(condition, True):
        return PlanKind.ALWAYS_ALLOWED
    if c.is_const(condition, False):
        return PlanKind.ALWAYS_DENIED
    return PlanKind.CONDITIONAL


def _unsupported_parts(condition: c.Node) -> Iterator[UnsupportedPart]:
    seen = set()
    for node in c.walk(condition):
        if node.get("op") == "unsupported":
            part = UnsupportedPart(node["policy"], node["expression"], node["reason"])
            if part not in seen:
                seen.add(part)
                yield part


# --- the request -------------------------------------------------------------------------


def _context(request: PlanRequest) -> dict[str, Any] | str:
    if request.context is not None and request.context_json is not None:
        raise RequestError("context_json", "set either context or context_json, not both")
    if request.context_json is not None:
        return request.context_json
    return dict(request.context) if request.context is not None else {}


def _entities(bundle: CompiledBundle, request: PlanRequest) -> cedarpy.Entities:
    """The bundle's entities with the request's merged over them (all of them: `in` needs
    every descendant of a policy's target, not only what the principal reaches)."""
    text = request.entities_json
    if not text:
        return bundle.entities
    try:
        return bundle.entities.with_added_json_str(text, bundle.schema)
    except RecursionError:
        raise RequestError("entities", "nested too deeply") from None
    except ValueError as exc:
        # engine's path names the problem precisely (and finds conflicts with the bundle)
        engine.entities_for(bundle, [engine.cedar_request(_as_authz(request))], text)
        raise RequestError("entities", str(exc)) from None


def _as_authz(request: PlanRequest) -> AuthzRequest:
    return AuthzRequest(
        principal=request.principal,
        action=request.action,
        resource=EntityRef(request.resource_type, ""),
        context=request.context,
        context_json=request.context_json,
        entities_json=request.entities_json,
    )


def _validate(bundle: CompiledBundle, request: PlanRequest, action: str) -> None:
    """Refuse a resource type IsAuthorized would refuse, naming the field. (Principal, action
    and context are checked by Cedar's partial evaluation, as IsAuthorized checks them.)"""
    kind = request.resource_type
    if not kind:
        raise RequestError("resource_type", "must not be empty")
    if not _TYPE_NAME.fullmatch(kind):
        raise RequestError("resource_type", f"{kind!r} is not an entity type name")
    if bundle.schema is None:
        return
    errors = _scope_errors(bundle.schema, action, kind)
    if any("unrecognized action" in e for e in errors):
        raise RequestError("action", f"action {action} is not declared in the schema")
    if any("unrecognized entity type" in e for e in errors):
        raise RequestError("resource_type", f"entity type `{kind}` is not declared in the schema")
    if errors:
        raise RequestError("resource_type", f"action {action} does not apply to type `{kind}`")


_SCOPE_CACHE: dict[tuple[int, str, str], tuple[cedarpy.Schema, tuple[str, ...]]] = {}


def _scope_errors(schema: cedarpy.Schema, action: str, kind: str) -> tuple[str, ...]:
    """What Cedar's validator says of `permit(principal, action == A, resource is T);`."""
    key = (id(schema), action, kind)
    cached = _SCOPE_CACHE.get(key)
    if cached is not None and cached[0] is schema:
        return cached[1]
    text = f"permit(principal, action == {action}, resource is {kind});"
    try:
        result = cedarpy.validate_policies(text, schema)
        errors = () if result.validation_passed else tuple(str(e) for e in result.errors)
    except ValueError as exc:  # never expected: both parts were checked
        errors = (f"unrecognized action: {exc}",)
    if len(_SCOPE_CACHE) > 1024:
        _SCOPE_CACHE.clear()
    _SCOPE_CACHE[key] = (schema, errors)
    return errors


# --- partial evaluation ------------------------------------------------------------------


def _residuals(
    bundle: CompiledBundle,
    request: PlanRequest,
    partial: dict[str, Any],
    entities: cedarpy.Entities,
) -> tuple[dict[str, dict[str, Any]], cedarpy.Entities]:
    """Residual policies with the resource unknown, by internal id, and the entities used.

    Cedar's partial evaluation turns an entity missing from the store (say, a principal
    known only from a token) into an unknown, where IsAuthorized treats it as an entity
    without attributes or parents. Such entities are added, empty, and the call repeated.
    """
    for _ in range(_UNKNOWN_ROUNDS):
        result = cedarpy.is_authorized_partial(partial, bundle.policy_set, entities, bundle.schema)
        missing = [u for u in result.diagnostics.unknown_entities if u != est.RESOURCE]
        empties = [_empty_entity(text) for text in missing]
        if not empties or None in empties:
            break
        entities = entities.with_added_json_str(json.dumps(empties), None)
    if result.decision is cedarpy.Decision.NoDecision and not result.residuals:
        raise engine.request_error(list(result.diagnostics.errors), _as_authz(request))
    return result.residuals or {}, entities


def _closed_parts(residual: dict[str, Any]) -> Iterator[est.Expr]:
    """The largest sub-expressions of a residual that do not involve the resource."""
    for cond in residual.get("conditions", []):
        opened = est.open_nodes(cond["body"])
        stack = [cond["body"]]
        while stack:
            expr = stack.pop()
            if id(expr) not in opened:
                if "Value" not in expr:
                    yield expr
            else:
                stack.extend(est.children(expr))


# --- Cedar's uid text --------------------------------------------------------------------

_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.:/@+=-]*$")
_CEDAR_UID = r'[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*::"(?:[^"\\]|\\.)*"'
_RENDERED = re.compile(rf"principal == (?P<uid>{_CEDAR_UID}), action, resource\);\s*$", re.S)
_UID_TEXT = re.compile(r"^(?P<type>" + _TYPE_NAME.pattern[1:-1] + r')::"(?P<id>.*)"$', re.S)
_UNESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]{1,6}\}|.)", re.S)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _cedar_uid(ref: EntityRef, field: str) -> str:
    """`Type::"id"` exactly as Cedar writes it: its uid parser takes only that normal form
    (`\\'` for a quote, `\\u{e2c9}` for what it does not print), so Cedar writes it here."""
    if _PLAIN_ID.fullmatch(ref.id):
        return f'{ref.type}::"{ref.id}"'
    policy = {
        "effect": "permit",
        "principal": {"op": "==", "entity": ref.to_json()},
        "action": {"op": "All"},
        "resource": {"op": "All"},
        "conditions": [],
    }
    document = {"staticPolicies": {"uid": policy}, "templates": {}, "templateLinks": []}
    try:
        match = _RENDERED.search(cedarpy.policies_from_json_str(json.dumps(document)))
    except ValueError as exc:
        raise RequestError(field, f"not a Cedar entity uid: {exc}") from None
    if match is None:  # never expected: Cedar renders every uid this way
        raise RequestError(field, f"cannot write {ref} as Cedar text")
    return match.group("uid")


def _empty_entity(text: str) -> dict[str, Any] | None:
    """An entity without attributes or parents for a uid as Cedar prints it; None if unread."""
    match = _UID_TEXT.fullmatch(text)
    if match is None:
        return None

    def unescape(found: re.Match[str]) -> str:
        escape = found.group(1)
        if escape.startswith("u{"):
            return chr(int(escape[2:-1], 16))
        return _SIMPLE.get(escape, "\\" + escape)

    ident = _UNESCAPE.sub(unescape, match.group("id"))
    return {"uid": {"type": match.group("type"), "id": ident}, "attrs": {}, "parents": []}
