"""OpenID AuthZEN Authorization API 1.0 <-> Cedar: requests, decisions, the metadata document.

The mapping (docs/calling.md, "AuthZEN"):
- `subject` {type, id} is the principal `type::"id"`; `resource` likewise.
- `subject.properties` / `resource.properties` (objects) are the attributes of a request
  entity for that uid, with no parents, exactly as a pdp.v1 request entity: a uid that is
  also a bundle entity must then be identical to it, else the request is refused.
  Absent or `{}`: no request entity (a bundle entity, or an unknown one with no attributes).
- `action.name` is `Action::"name"` (a whole uid such as `Shop::Action::"read"` is taken
  as written); `action.properties` are keys of the Cedar context (a key that is also in
  `context` is refused): Cedar actions carry no request attributes.
- `context` is the Cedar context.
Values are Cedar JSON (`{"__entity": ...}`, `{"__extn": ...}` escapes work); `null` and
fractions are refused, naming the field. Unknown fields are ignored, as the spec requires.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.errors import RequestError
from pdp.model import Decision, EntityRef
from pdp.server.limits import Limits
from pdp.v1 import authorizer_pb2 as pb

EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
METADATA_PATH = "/.well-known/authzen-configuration"
SEMANTICS = {"execute_all": None, "deny_on_first_deny": False, "permit_on_first_permit": True}
_KEYS = ("subject", "action", "resource", "context")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$")


@dataclass(slots=True)
class Question:
    """One evaluation as a pdp.v1 message, with how its fields read in AuthZEN terms."""

    message: pb.IsAuthorizedRequest
    entity_owners: list[str] = field(default_factory=list)  # entities[i] came from this key
    prefix: str = ""  # "evaluations[2]." for an item of a batch

    def rename(self, name: str) -> str:
        """A pdp field name (`principal.type`, `entities_json[0].attrs.x`) in AuthZEN terms."""
        return self.prefix + self._rename(name)

    def _rename(self, name: str) -> str:
        head, sep, rest = name.partition(".")
        match = _ENTITIES.match(name)
        if match is not None:
            index = int(match.group(1)) if match.group(1) else None
            tail = match.group(2).removeprefix(".attrs")
            if index is not None and index < len(self.entity_owners):
                return f"{self.entity_owners[index]}.properties{tail}"
            owners = sorted(set(self.entity_owners))
            return f"{owners[0]}.properties" if len(owners) == 1 else "properties"
        if head == "principal":
            return f"subject{sep}{rest}"
        if head == "action":
            return "action.name"
        if head in ("context_json", "request"):
            return f"context{sep}{rest}"
        return name


_ENTITIES = re.compile(r"^entities(?:_json)?(?:\[(\d+)\])?(.*)$")


def question(body: Mapping[str, Any], limits: Limits, prefix: str = "") -> Question:
    """The evaluation a request (or one resolved item of `evaluations`) asks; RequestError
    naming the field (`subject.type`, `evaluations[2].resource`, ...)."""
    subject = _entity(body.get("subject"), f"{prefix}subject", limits)
    resource = _entity(body.get("resource"), f"{prefix}resource", limits)
    action_name, action_props = _action(body.get("action"), f"{prefix}action", limits)
    context = _object(body.get("context"), f"{prefix}context", limits, required=False)
    if action_props:
        context = dict(context or {})
        for key, value in action_props.items():
            if key in context:
                raise RequestError(
                    f"{prefix}action.properties.{key}",
                    "is also a context key: action properties become context keys in Cedar",
                )
            context[key] = value
    message = pb.IsAuthorizedRequest(
        principal=pb.EntityUid(type=subject[0], id=subject[1]),
        action=_action_uid(action_name, f"{prefix}action.name"),
        resource=pb.EntityUid(type=resource[0], id=resource[1]),
    )
    if context is not None:
        message.context_json = json.dumps(context, ensure_ascii=False)
    entities: list[dict[str, Any]] = []
    owners: list[str] = []
    for name, (etype, eid, props) in (("subject", subject), ("resource", resource)):
        if not props:
            continue
        entity = {"uid": {"type": etype, "id": eid}, "attrs": props, "parents": []}
        if entities and entities[0]["uid"] == entity["uid"]:
            if entities[0] != entity:
                raise RequestError(
                    f"{prefix}resource.properties",
                    "the subject is this same entity, with different properties",
                )
            continue
        entities.append(entity)
        owners.append(name)
    if entities:
        message.entities_json = json.dumps(entities, ensure_ascii=False)
    return Question(message, owners, prefix)


def resolve(item: Any, defaults: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    """Item `index` of `evaluations` with the top-level defaults for the keys it omits
    (whole values, never merged field by field)."""
    if not isinstance(item, dict):
        raise RequestError(f"evaluations[{index}]", "must be a JSON object")
    return {key: item[key] if key in item else defaults.get(key) for key in _KEYS}


def semantic(body: Mapping[str, Any]) -> bool | None:
    """`options.evaluations_semantic`: None (execute_all), False (deny_on_first_deny) or
    True (permit_on_first_permit); RequestError for anything else."""
    options = body.get("options")
    if options is None:
        return None
    if not isinstance(options, dict):
        raise RequestError("options", "must be a JSON object")
    chosen = options.get("evaluations_semantic", "execute_all")
    if not isinstance(chosen, str) or chosen not in SEMANTICS:
        raise RequestError("options.evaluations_semantic", f"must be one of {', '.join(SEMANTICS)}")
    return SEMANTICS[chosen]


def decision_json(decision: Decision, rename: Any = None) -> dict[str, Any]:
    """An AuthZEN Decision: `decision`, and a `context` with pdp's id, revision and reasons
    (the determining policies), plus errors when there are any."""
    context: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "bundle_revision": decision.bundle_revision,
        "reasons": list(decision.determining_policies),
    }
    if decision.malformed:
        message = decision.errors[0].removeprefix("invalid request: ") if decision.errors else ""
        if rename is not None:
            message = _renamed(message, rename)
        context["error"] = {"status": 400, "message": message}
    elif decision.errors:
        context["errors"] = list(decision.errors)
        context["erroring_policies"] = list(decision.erroring_policies)
    return {"decision": decision.allowed, "context": context}


def metadata(base: str) -> dict[str, str]:
    """The PDP metadata document for `base` (the identifier the PEP derived the URL from)."""
    return {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}{EVALUATION_PATH}",
        "access_evaluations_endpoint": f"{base}{EVALUATIONS_PATH}",
    }


def base_url(configured: str | None, host: str | None, tls: bool) -> str | None:
    """The PDP identifier: `--authzen-base-url`, else this request's scheme and Host (only
    when the Host header is a plain host[:port]); None when neither can be had."""
    if configured:
        return configured
    if host is None or not _HOST.match(host):
        return None
    return f"{'https' if tls else 'http'}://{host.lower()}"


def check_base_url(text: str) -> str:
    """`--authzen-base-url` checked: http(s), a host, no query or fragment; ValueError."""
    match = re.match(r"^(https?)://([^/?#]+)(/[^?#]*)?$", text)
    if match is None or not _HOST.match(match.group(2)):
        raise ValueError(f"expected https://HOST[:PORT][/PATH], no query or fragment: {text!r}")
    return text.rstrip("/")


# --- values -------------------------------------------------------------------------------


def _entity(value: Any, field: str, limits: Limits) -> tuple[str, str, dict[str, Any] | None]:
    if value is None:
        raise RequestError(field, "is required")
    if not isinstance(value, dict):
        raise RequestError(field, 'must be an object {"type": ..., "id": ...}')
    for part in ("type", "id"):
        if part not in value:
            raise RequestError(f"{field}.{part}", "is required")
        if not isinstance(value[part], str):
            raise RequestError(f"{field}.{part}", "must be a string")
    if not value["type"]:
        raise RequestError(f"{field}.type", "must not be empty")
    props = _object(value.get("properties"), f"{field}.properties", limits, required=False)
    return value["type"], value["id"], props


def _action(value: Any, field: str, limits: Limits) -> tuple[str, dict[str, Any] | None]:
    if value is None:
        raise RequestError(field, "is required")
    if not isinstance(value, dict):
        raise RequestError(field, 'must be an object {"name": ...}')
    if "name" not in value:
        raise RequestError(f"{field}.name", "is required")
    name = value["name"]
    if not isinstance(name, str):
        raise RequestError(f"{field}.name", "must be a string")
    if not name:
        raise RequestError(f"{field}.name", "must not be empty")
    return name, _object(value.get("properties"), f"{field}.properties", limits, required=False)


def _action_uid(name: str, field: str) -> pb.EntityUid:
    if "::" in name:
        try:
            ref = EntityRef.parse(name)
        except ValueError:
            ref = EntityRef("Action", name)  # not a uid: a name with colons in it
        return pb.EntityUid(type=ref.type, id=ref.id)
    return pb.EntityUid(type="Action", id=name)


def _object(value: Any, field: str, limits: Limits, required: bool) -> dict[str, Any] | None:
    if value is None:
        if required:
            raise RequestError(field, "is required")
        return None
    if not isinstance(value, dict):
        raise RequestError(field, "must be a JSON object")
    _check_values(value, field, limits)
    return value


def _check_values(root: dict[str, Any], field: str, limits: Limits) -> None:
    """Refuse JSON values Cedar has no form for (null, fractions), naming where; iterative,
    and no deeper than --max-depth (the limits check counts the same levels later)."""
    stack: list[tuple[str, Any, int]] = [(field, root, 1)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > limits.max_depth + 1:
                raise RequestError(where, f"nested deeper than {limits.max_depth} (--max-depth)")
            stack.extend((f"{where}{_step(k)}", v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            if depth > limits.max_depth + 1:
                raise RequestError(where, f"nested deeper than {limits.max_depth} (--max-depth)")
            stack.extend((f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value))
        elif value is None:
            raise RequestError(where, "null is not a Cedar value (leave the key out)")
        elif isinstance(value, float):
            raise RequestError(
                where,
                f"{value!r} is not a whole number: Cedar numbers are 64-bit integers "
                '(use {"__extn": {"fn": "decimal", "arg": "..."}} for fractions)',
            )


def _step(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"


def _renamed(message: str, rename: Any) -> str:
    head, sep, rest = message.partition(": ")
    if sep and re.match(r"^[A-Za-z_][A-Za-z0-9_.\[\]\"-]*$", head):
        return f"{rename(head)}{sep}{rest}"
    return message
