"""pdp.v1 as JSON over HTTP: POST /v1/is_authorized, /v1/batch_is_authorized, /v1/plan_resources.

Bodies are the proto3 JSON form of the pdp.v1 request messages (field names as in the proto,
lowerCamelCase accepted too; unknown fields refused), with one difference that only adds
exactness: `context` and `entities` are read as Cedar JSON as they are, so a Long beyond
2^53 stays exact (a `google.protobuf.Struct` would make it a double). Each call then runs
exactly as over gRPC (`server/calls.py`): same limits, conversion, engine, decision log
lines and metrics. Answers: IsAuthorizedResponse / BatchIsAuthorizedResponse in proto3
JSON (every field present), and for plans the plan as `pdp.plan` writes it (README,
"Query plans").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pdp.errors import RequestError
from pdp.model import Decision
from pdp.plan.api import plan_request_from_json
from pdp.v1 import authorizer_pb2 as pb

_CAMEL = {
    "contextJson": "context_json",
    "entitiesJson": "entities_json",
    "resourceType": "resource_type",
}
_AUTHZ_FIELDS = frozenset(
    ("principal", "action", "resource", "context", "context_json", "entities", "entities_json")
)
_BATCH_FIELDS = frozenset(("requests", "entities", "entities_json"))
_DECISIONS = {True: "DECISION_ALLOW", False: "DECISION_DENY"}


class Sent:
    """Which fields a body gave as objects (`context`, `entities`), so errors about the
    `_json` text pdp made of them name what the caller wrote."""

    def __init__(self) -> None:
        self.objects: set[str] = set()  # "context", "requests[2].entities", ...

    def rename(self, field: str) -> str:
        def replace(match: re.Match[str]) -> str:
            base = f"{match.group(1)}{match.group(2)}"
            return base if base in self.objects else match.group(0)

        return _SENT_AS.sub(replace, field)


_SENT_AS = re.compile(r"^((?:requests\[\d+\]\.)?)(context|entities)_json")


def _fields(body: dict[str, Any], allowed: frozenset[str], prefix: str) -> dict[str, Any]:
    """`body` with lowerCamelCase names made snake_case; RequestError for an unknown one."""
    named: dict[str, Any] = {}
    for key, value in body.items():
        name = _CAMEL.get(key, key)
        if name not in allowed:
            raise RequestError(f"{prefix}{key}", "unknown field")
        if name in named:
            raise RequestError(f"{prefix}{key}", f"given twice (as {name} too)")
        named[name] = value
    return named


def _uid(body: dict[str, Any], name: str, prefix: str) -> pb.EntityUid | None:
    value = body.get(name)
    if value is None:
        return None
    field = f"{prefix}{name}"
    if not isinstance(value, dict):
        raise RequestError(field, 'must be an object {"type": ..., "id": ...}')
    unknown = sorted(set(value) - {"type", "id"})
    if unknown:
        raise RequestError(f"{field}.{unknown[0]}", "unknown field")
    for part in ("type", "id"):
        if not isinstance(value.get(part, ""), str):
            raise RequestError(f"{field}.{part}", "must be a string")
    return pb.EntityUid(type=value.get("type", ""), id=value.get("id", ""))


def _text(body: dict[str, Any], name: str, prefix: str, kind: type, sent: Sent) -> str | None:
    """`name` (an object or list, made Cedar JSON text) or `name_json` (text), not both."""
    value, text = body.get(name), body.get(f"{name}_json")
    if text is not None and not isinstance(text, str):
        raise RequestError(f"{prefix}{name}_json", "must be a string of JSON text")
    if value is None:
        return text or None
    if not isinstance(value, kind):
        what = "a JSON object" if kind is dict else "a JSON list of entities"
        raise RequestError(f"{prefix}{name}", f"must be {what}")
    if text:
        raise RequestError(f"{prefix}{name}_json", f"set either {name} or {name}_json, not both")
    sent.objects.add(f"{prefix}{name}")
    return json.dumps(value, ensure_ascii=False)


def authz_message(
    body: Any, sent: Sent, prefix: str = "", message: pb.IsAuthorizedRequest | None = None
) -> pb.IsAuthorizedRequest:
    """The IsAuthorizedRequest a JSON body asks; RequestError naming the field."""
    if not isinstance(body, dict):
        raise RequestError(prefix.rstrip("."), "must be a JSON object")
    body = _fields(body, _AUTHZ_FIELDS, prefix)
    message = message if message is not None else pb.IsAuthorizedRequest()
    for name in ("principal", "action", "resource"):
        uid = _uid(body, name, prefix)
        if uid is not None:
            getattr(message, name).CopyFrom(uid)
    context = _text(body, "context", prefix, dict, sent)
    if context is not None:
        message.context_json = context
    entities = _text(body, "entities", prefix, list, sent)
    if entities is not None:
        message.entities_json = entities
    return message


def batch_message(body: dict[str, Any], sent: Sent) -> pb.BatchIsAuthorizedRequest:
    body = _fields(body, _BATCH_FIELDS, "")
    requests = body.get("requests", [])
    if not isinstance(requests, list):
        raise RequestError("requests", "must be a JSON list of requests")
    message = pb.BatchIsAuthorizedRequest()
    for index, item in enumerate(requests):
        authz_message(item, sent, f"requests[{index}].", message.requests.add())
    entities = _text(body, "entities", "", list, sent)
    if entities is not None:
        message.entities_json = entities
    return message


def plan_message(body: dict[str, Any], sent: Sent) -> pb.PlanResourcesRequest:
    """The PlanResourcesRequest of a body `pdp.plan.api` reads (its JSON shape owner)."""
    named = {_CAMEL.get(key, key): value for key, value in body.items()}
    question = plan_request_from_json(named)
    message = pb.PlanResourcesRequest(
        principal=pb.EntityUid(type=question.principal.type, id=question.principal.id),
        action=pb.EntityUid(type=question.action.type, id=question.action.id),
        resource_type=question.resource_type,
    )
    if question.context is not None:
        message.context_json = json.dumps(question.context, ensure_ascii=False)
        sent.objects.add("context")
    elif question.context_json is not None:
        message.context_json = question.context_json
    if question.entities_json is not None:
        message.entities_json = question.entities_json
        if named.get("entities") is not None:
            sent.objects.add("entities")
    return message


def decision_json(decision: Decision, rename: Callable[[str], str] | None = None) -> dict[str, Any]:
    """IsAuthorizedResponse in proto3 JSON, every field present."""
    errors = list(decision.errors)
    if rename is not None and decision.malformed:
        errors = [_renamed_error(error, rename) for error in errors]
    return {
        "decision": _DECISIONS[decision.allowed],
        "determining_policies": list(decision.determining_policies),
        "errors": errors,
        "decision_id": decision.decision_id,
        "bundle_revision": decision.bundle_revision,
        "erroring_policies": list(decision.erroring_policies),
    }


_MALFORMED = re.compile(r"^(invalid request: )(\S+?)(: .*)$", re.S)


def _renamed_error(error: str, rename: Callable[[str], str]) -> str:
    match = _MALFORMED.match(error)
    if match is None:
        return error
    return f"{match.group(1)}{rename(match.group(2))}{match.group(3)}"
