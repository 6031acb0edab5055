"""The JSON face of PlanResources, for an HTTP edge (`POST /v1/plan_resources`): no transport.

The body is the JSON mapping of `pdp.v1.PlanResourcesRequest`: `principal` and `action` as
`{"type", "id"}`, `resource_type`, and `context` (an object) or `context_json` (text),
`entities` (a list) or `entities_json` (text). The answer is the plan as JSON (README,
"Query plans"). Limits, logging and status codes are the edge's: a RequestError here is a
400 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pdp.bundle.compiler import CompiledBundle
from pdp.errors import RequestError
from pdp.model import EntityRef
from pdp.plan.planner import plan_resources
from pdp.plantypes import PlanRequest

_FIELDS = frozenset(
    ("principal", "action", "resource_type", "context", "context_json", "entities", "entities_json")
)


def plan_request_from_json(body: Any) -> PlanRequest:
    """The question a JSON body asks; RequestError naming the field when it is malformed."""
    if not isinstance(body, Mapping):
        raise RequestError("", "the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise RequestError(unknown[0], "unknown field")
    resource_type = body.get("resource_type")
    if not isinstance(resource_type, str):
        raise RequestError("resource_type", "must be a string")
    context = body.get("context")
    if context is not None and not isinstance(context, Mapping):
        raise RequestError("context", "must be a JSON object")
    context_json = _text(body, "context_json")
    if context is not None and context_json is not None:
        raise RequestError("context_json", "set either context or context_json, not both")
    entities = body.get("entities")
    entities_json = _text(body, "entities_json")
    if entities is not None:
        if not isinstance(entities, list):
            raise RequestError("entities", "must be a JSON list of entities")
        if entities_json is not None:
            raise RequestError("entities_json", "set either entities or entities_json, not both")
        entities_json = json.dumps(entities)
    return PlanRequest(
        principal=_uid(body, "principal"),
        action=_uid(body, "action"),
        resource_type=resource_type,
        context=context,
        context_json=context_json,
        entities_json=entities_json or None,
    )


def plan_resources_json(bundle: CompiledBundle, body: Any) -> dict[str, Any]:
    """Plan a JSON body's question on `bundle`; the plan as JSON. RequestError when malformed."""
    return plan_resources(bundle, plan_request_from_json(body)).to_json()


def _uid(body: Mapping[str, Any], name: str) -> EntityRef:
    value = body.get(name)
    if value is None:
        raise RequestError(name, "is required")
    ref = EntityRef.from_json(value)
    if ref is None:
        raise RequestError(name, 'must be {"type": ..., "id": ...}')
    if not ref.type:
        raise RequestError(f"{name}.type", "must not be empty")
    return ref


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestError(name, "must be a string of JSON text")
    return value or None
