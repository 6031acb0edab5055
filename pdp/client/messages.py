"""Caller values <-> pdp.v1 messages, for the client and embedded mode alike.

Context and entities travel as Cedar JSON text (`context_json`, `entities_json`), so every
Long stays exact; a value that is not JSON is refused here, before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pdp.client.errors import BadRequest
from pdp.client.types import Decision, Request, Status, Uid, UidLike
from pdp.model import Decision as ModelDecision
from pdp.model import EntityRef
from pdp.plantypes import Plan, PlanKind, UnsupportedPart
from pdp.v1 import authorizer_pb2 as pb

_KINDS = {
    pb.PLAN_KIND_ALWAYS_ALLOWED: PlanKind.ALWAYS_ALLOWED,
    pb.PLAN_KIND_ALWAYS_DENIED: PlanKind.ALWAYS_DENIED,
    pb.PLAN_KIND_CONDITIONAL: PlanKind.CONDITIONAL,
}

Context = Mapping[str, Any] | str | None
Entities = Sequence[Mapping[str, Any]] | str | None


def uid(value: UidLike, field: str, action: bool = False) -> pb.EntityUid:
    try:
        found = Uid.action(value) if action else Uid.of(value, field)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return pb.EntityUid(type=_text(found.type, f"{field}.type"), id=_text(found.id, f"{field}.id"))


def _text(value: str, field: str) -> str:
    """`value`, when a message can carry it: a Python str may hold a lone surrogate, which is
    not text (UTF-8 cannot encode it, so protobuf would raise UnicodeEncodeError)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "holds a lone surrogate (U+D800 to U+DFFF), which is not text", field
        ) from None
    return value


def _json(value: Any, field: str, kind: type[Any]) -> str:
    if isinstance(value, str):
        return _text(value, field)  # Cedar JSON text already: sent as is, checked by the server
    if not isinstance(value, kind):
        expected = "an object" if kind is Mapping else "a list of entities"
        got = type(value).__name__
        raise BadRequest(f"must be {expected} (or its JSON text), got {got}", field)
    try:
        return json.dumps(value if kind is Mapping else list(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"is not JSON: {exc}", field) from None


def authz_request(
    principal: UidLike,
    action: UidLike,
    resource: UidLike,
    context: Context = None,
    entities: Entities = None,
    prefix: str = "",
) -> pb.IsAuthorizedRequest:
    """The IsAuthorizedRequest for one question; BadRequest naming the field."""
    message = pb.IsAuthorizedRequest(
        principal=uid(principal, f"{prefix}principal"),
        action=uid(action, f"{prefix}action", action=True),
        resource=uid(resource, f"{prefix}resource"),
    )
    if context is not None:
        message.context_json = _json(context, f"{prefix}context", Mapping)
    if entities is not None:
        message.entities_json = _json(entities, f"{prefix}entities", Sequence)
    return message


def batch_request(
    requests: Sequence[Request | tuple[Any, ...]], entities: Entities = None
) -> pb.BatchIsAuthorizedRequest:
    """The BatchIsAuthorizedRequest; items are Requests or (principal, action, resource[,
    context]) tuples."""
    if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
        raise BadRequest("must be a list of Request values or tuples", "requests")
    message = pb.BatchIsAuthorizedRequest()
    for index, item in enumerate(requests):
        prefix = f"requests[{index}]."
        if isinstance(item, Request):
            built = authz_request(
                item.principal, item.action, item.resource, item.context, item.entities, prefix
            )
        elif isinstance(item, tuple) and len(item) in (3, 4):
            context = item[3] if len(item) == 4 else None
            built = authz_request(item[0], item[1], item[2], context, prefix=prefix)
        else:
            raise BadRequest(
                "expected a Request or a (principal, action, resource[, context]) tuple",
                f"requests[{index}]",
            )
        message.requests.append(built)
    if entities is not None:
        message.entities_json = _json(entities, "entities", Sequence)
    return message


def plan_request(
    principal: UidLike,
    action: UidLike,
    resource_type: str,
    context: Context = None,
    entities: Entities = None,
) -> pb.PlanResourcesRequest:
    """The PlanResourcesRequest for "which resources of `resource_type`?"."""
    if not isinstance(resource_type, str) or not resource_type:
        raise BadRequest("must be an entity type name such as Order", "resource_type")
    message = pb.PlanResourcesRequest(
        principal=uid(principal, "principal"),
        action=uid(action, "action", action=True),
        resource_type=_text(resource_type, "resource_type"),
    )
    if context is not None:
        message.context_json = _json(context, "context", Mapping)
    if entities is not None:
        message.entities_json = _json(entities, "entities", Sequence)
    return message


def decision(response: pb.IsAuthorizedResponse) -> Decision:
    return Decision(
        allowed=response.decision == pb.DECISION_ALLOW,
        decision_id=response.decision_id,
        determining_policies=tuple(response.determining_policies),
        errors=tuple(response.errors),
        erroring_policies=tuple(response.erroring_policies),
        bundle_revision=response.bundle_revision,
    )


def from_model(model: ModelDecision) -> Decision:
    """The caller's Decision for one the engine made (embedded mode)."""
    return Decision(
        allowed=model.allowed,
        decision_id=model.decision_id,
        determining_policies=model.determining_policies,
        errors=model.errors,
        erroring_policies=model.erroring_policies,
        bundle_revision=model.bundle_revision,
    )


def plan(response: pb.PlanResourcesResponse, resource_type: str) -> Plan:
    """The plan a PlanResourcesResponse carries, as `pdp.plan` makes it (so `to_predicate`
    and the SQLAlchemy adapter take it as they take a local plan)."""
    return Plan(
        kind=_KINDS[response.kind],
        condition=json.loads(response.condition_json) if response.condition_json else {},
        policies=tuple(response.policies),
        resource_type=resource_type,
        decision_id=response.decision_id,
        bundle_revision=response.bundle_revision,
        unsupported=tuple(
            UnsupportedPart(p.policy, p.expression, p.reason) for p in response.unsupported
        ),
    )


def status(response: pb.GetStatusResponse) -> Status:
    return Status(
        serving=response.serving,
        bundle_name=response.bundle_name,
        bundle_revision=response.bundle_revision,
        policy_count=response.policy_count,
        entity_count=response.entity_count,
        activations=response.activations,
        load_failures=response.load_failures,
        last_error=response.last_error,
        warnings=tuple(response.warnings),
        version=response.version,
    )


def entity_ref(value: pb.EntityUid) -> EntityRef:
    return EntityRef(value.type, value.id)
