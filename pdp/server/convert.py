"""Protobuf <-> model conversion for pdp.v1, with errors that name the offending field."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf import struct_pb2

from pdp.errors import PdpError, RequestError
from pdp.model import AuthzRequest, Decision, EntityRef
from pdp.plan import Plan, PlanKind, PlanRequest
from pdp.v1 import authorizer_pb2 as pb

_DECISIONS = {True: pb.DECISION_ALLOW, False: pb.DECISION_DENY}
_PLAN_KINDS = {
    PlanKind.ALWAYS_ALLOWED: pb.PLAN_KIND_ALWAYS_ALLOWED,
    PlanKind.ALWAYS_DENIED: pb.PLAN_KIND_ALWAYS_DENIED,
    PlanKind.CONDITIONAL: pb.PLAN_KIND_CONDITIONAL,
}
_LONG_MIN = -(2**63)


def authz_request(message: pb.IsAuthorizedRequest, prefix: str = "") -> AuthzRequest:
    """The model request for an IsAuthorizedRequest; `prefix` locates it inside a batch."""
    context_json = message.context_json
    context: dict[str, Any] | None = None
    if message.HasField("context"):
        if context_json:
            raise RequestError(
                f"{prefix}context_json", "set either context or context_json, not both"
            )
        context = struct_to_cedar(message.context, f"{prefix}context")
    entities, text = message.entities, message.entities_json
    return AuthzRequest(
        principal=entity_ref(message, "principal", prefix),
        action=entity_ref(message, "action", prefix),
        resource=entity_ref(message, "resource", prefix),
        context=context,
        context_json=context_json or None,
        # the common cases (text or nothing) without building the field's name
        entities_json=entities_json(entities, text, f"{prefix}entities")
        if entities
        else text or None,
    )


def named_as_sent(error: PdpError, message: Any) -> PdpError:
    """`error` naming `entities_json` when that, not `entities`, is what `message` set."""
    if not isinstance(error, RequestError) or error.field != "entities":
        return error
    if getattr(message, "entities_json", ""):
        return type(error)("entities_json", error.message)  # a limit stays a limit
    return error


def entity_ref(message: Any, name: str, prefix: str = "") -> EntityRef:
    if not message.HasField(name):
        raise RequestError(f"{prefix}{name}", "is required")
    uid = getattr(message, name)
    kind = uid.type
    if not kind:
        raise RequestError(f"{prefix}{name}.type", "must not be empty")
    return EntityRef(kind, uid.id)


def entities_json(entities: Iterable[pb.Entity], text: str, field: str) -> str | None:
    """Cedar JSON entity list text from either the repeated field or its `_json` twin."""
    items = list(entities)
    if items and text:
        raise RequestError(f"{field}_json", f"set either {field} or {field}_json, not both")
    if text:
        return text
    if not items:
        return None
    return json.dumps([_entity(e, f"{field}[{i}]") for i, e in enumerate(items)])


def _entity(entity: pb.Entity, field: str) -> dict[str, Any]:
    if not entity.HasField("uid") or not entity.uid.type:
        raise RequestError(f"{field}.uid.type", "must not be empty")
    for index, parent in enumerate(entity.parents):
        if not parent.type:
            raise RequestError(f"{field}.parents[{index}].type", "must not be empty")
    return {
        "uid": {"type": entity.uid.type, "id": entity.uid.id},
        "attrs": struct_to_cedar(entity.attrs, f"{field}.attrs"),
        "parents": [{"type": p.type, "id": p.id} for p in entity.parents],
        "tags": struct_to_cedar(entity.tags, f"{field}.tags"),
    }


def struct_to_cedar(struct: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """A Struct as Cedar JSON: whole numbers become Longs; fractions are refused by name."""
    return {key: _value(value, f"{field}.{key}") for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value, field: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_cedar(value.struct_value, field)
    if kind == "list_value":
        return [_value(v, f"{field}[{i}]") for i, v in enumerate(value.list_value.values)]
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number) or number != int(number):
            raise RequestError(
                field,
                f"{number!r} is not a whole number: Cedar numbers are 64-bit integers "
                '(use {"__extn": {"fn": "decimal", "arg": "..."}} for fractions)',
            )
        if not _LONG_MIN <= number < -_LONG_MIN:
            raise RequestError(field, f"{number!r} is out of range for a Cedar Long (64-bit)")
        return int(number)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    raise RequestError(field, "null is not a Cedar value")


def response(decision: Decision) -> pb.IsAuthorizedResponse:
    return pb.IsAuthorizedResponse(
        decision=_DECISIONS[decision.allowed],
        determining_policies=decision.determining_policies,
        errors=decision.errors,
        decision_id=decision.decision_id,
        bundle_revision=decision.bundle_revision,
        erroring_policies=decision.erroring_policies,
    )


def plan_request(message: pb.PlanResourcesRequest) -> PlanRequest:
    """The model question for a PlanResourcesRequest."""
    has_context = message.HasField("context")
    if has_context and message.context_json:
        raise RequestError("context_json", "set either context or context_json, not both")
    return PlanRequest(
        principal=entity_ref(message, "principal"),
        action=entity_ref(message, "action"),
        resource_type=message.resource_type,
        context=struct_to_cedar(message.context, "context") if has_context else None,
        context_json=message.context_json or None,
        entities_json=entities_json(message.entities, message.entities_json, "entities"),
    )


def plan_response(plan: Plan) -> pb.PlanResourcesResponse:
    return pb.PlanResourcesResponse(
        kind=_PLAN_KINDS[plan.kind],
        condition_json=json.dumps(plan.condition, separators=(",", ":"), ensure_ascii=False),
        policies=plan.policies,
        unsupported=[
            pb.UnsupportedPart(policy=p.policy, expression=p.expression, reason=p.reason)
            for p in plan.unsupported
        ],
        decision_id=plan.decision_id,
        bundle_revision=plan.bundle_revision,
    )
