"""What one call hands to the decision log, and the JSON line each of its decisions becomes."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdp.bundle.manifest import LogRules
from pdp.decisionlog.masking import Masker
from pdp.model import AuthzRequest, Decision, EntityRef, uid_text

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle

IS_AUTHORIZED = "IsAuthorized"
BATCH_IS_AUTHORIZED = "BatchIsAuthorized"
CHECK = "Check"
PLAN_RESOURCES = "PlanResources"
# The HTTP edge's own calls (pdp.v1 over HTTP logs as the gRPC calls do).
ACCESS_EVALUATION = "AccessEvaluation"  # AuthZEN POST /access/v1/evaluation
ACCESS_EVALUATIONS = "AccessEvaluations"  # AuthZEN POST /access/v1/evaluations
FORWARD_AUTH = "ForwardAuth"  # /forward-auth: the Check pipeline for nginx, Traefik, Caddy
BATCHES = frozenset((BATCH_IS_AUTHORIZED, ACCESS_EVALUATIONS))
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class GatewayFields:
    """What the Envoy `Check` path adds to a decision log entry and to the metrics.

    Never put a token, key or secret here: only the token's `jti`, `kid` and `iss`.
    `authn_failure` is a short snake_case reason (`expired`, `bad_signature`, ...): it is a
    metric label, so anything else is counted as `other`.
    """

    method: str = ""
    path: str | None = None  # normalized, without the query string; None: not normalizable
    path_invalid: bool = False  # the path could not be normalized (it matched no route)
    route: str | None = None  # the matched route template
    source_address: str = ""
    identity_kind: str = "none"  # jwt, mtls, api_key or none
    principal: EntityRef | None = None  # when no Cedar request was built (401, unknown route)
    token_jti: str | None = None
    token_kid: str | None = None
    token_iss: str | None = None
    http_status: int = 0
    authn_failure: str | None = None
    unknown_route: bool = False
    request_id: str | None = None  # Envoy's request id (else x-request-id), validated
    trace_id: str | None = None  # from a valid W3C traceparent header, never the raw header
    dry_run: bool = False  # answered allow by a `dry_run: true` route; `decision` is the real one


@dataclass(frozen=True, slots=True)
class PlanFields:
    """What a query plan (PlanResources) adds to its line: it decides no single resource."""

    kind: str  # ALWAYS_ALLOWED, ALWAYS_DENIED or CONDITIONAL
    resource_type: str
    unsupported: int = 0  # parts the plan could not express


@dataclass(slots=True)  # not frozen: built on the request path, and frozen costs more
class Record:
    """What one call hands over: references only; the writer thread builds the lines."""

    api: str
    time: float
    seconds: float
    bundle: CompiledBundle | None
    decisions: Sequence[Decision]
    requests: Sequence[AuthzRequest | None]
    indices: Sequence[int] | None = None  # batch items kept by sampling; None: all
    shared_entities: str | None = None
    gateway: GatewayFields | None = None
    plan: PlanFields | None = None
    shadow: Sequence[dict[str, Any] | None] | None = None  # the candidate's answers (--shadow)

    @property
    def count(self) -> int:
        return len(self.decisions) if self.indices is None else len(self.indices)

    @property
    def logged(self) -> Sequence[int]:
        """The positions of the decisions to write."""
        return range(len(self.decisions)) if self.indices is None else self.indices


def line(record: Record, index: int, masker: Masker, rules: LogRules, full: bool = False) -> bytes:
    """The encoded line for decision `index` of `record`; over MAX_LINE_BYTES, its bulk goes.

    `full` (`--decision-log-requests full`): context and request entities are logged whatever
    the manifest says (masked as it says), for `pdp replay`."""
    if (
        record.gateway is None
        and record.plan is None
        and record.shadow is None
        and not (full or rules.context or rules.entities)
    ):
        encoded = _plain_line(record, index, masker).encode("ascii") + b"\n"
        if len(encoded) <= MAX_LINE_BYTES:
            return encoded
    return generic_line(record, index, masker, rules, full)


def generic_line(
    record: Record, index: int, masker: Masker, rules: LogRules, full: bool = False
) -> bytes:
    """`line` through the entry's dict (`build_entry`) and the JSON encoder: every shape."""
    entry = build_entry(record, index, masker, rules, full)
    encoded = _encode(entry)
    if len(encoded) > MAX_LINE_BYTES:
        for key in ("context", "entities", "errors", "inputs"):
            entry.pop(key, None)
        entry["truncated"] = True
        encoded = _encode(entry)
    return encoded


def build_entry(
    record: Record, index: int, masker: Masker, rules: LogRules, full: bool = False
) -> dict[str, Any]:
    """The JSON object for one decision of a record."""
    decision = record.decisions[index]
    requests = record.requests
    request = requests[index] if index < len(requests) else None
    bundle = record.bundle
    gateway = record.gateway
    principal: EntityRef | None = None
    action: EntityRef | None = None
    resource: EntityRef | None = None
    if request is not None:
        principal, action, resource = request.principal, request.action, request.resource
    if principal is None and gateway is not None:
        principal = gateway.principal
    errors = decision.errors
    entry: dict[str, Any] = {
        "time": _rfc3339(record.time),
        "decision_id": decision.decision_id,
        "api": record.api,
        "bundle_name": bundle.name if bundle is not None else None,
        "bundle_revision": decision.bundle_revision or None,
        "principal": str(principal) if principal is not None else None,
        "action": str(action) if action is not None else None,
        "resource": str(resource) if resource is not None else None,
        "decision": "allow" if decision.allowed else "deny",
        "determining_policies": list(decision.determining_policies),
        "erroring_policies": list(decision.erroring_policies),
        "errors": [masker.scrub(error) for error in errors] if errors else [],
        "latency_us": round(record.seconds * 1e6),
    }
    if decision.cached:
        entry["cached"] = True
    if record.api in BATCHES:
        entry["batch_index"] = index
    if gateway is not None:
        entry.update(_gateway_fields(gateway))
    if record.plan is not None:
        entry["resource"] = None
        entry["decision"] = _PLAN_OUTCOMES[record.plan.kind]
        entry["plan"] = {
            "kind": record.plan.kind,
            "resource_type": record.plan.resource_type,
            "unsupported": record.plan.unsupported,
        }
    if request is not None and (full or rules.context or rules.entities):
        _add_request_data(entry, record, request, masker, rules, full)
    shadow = record.shadow[index] if record.shadow is not None else None
    if shadow is not None:
        entry["shadow"] = shadow
    return entry


_PLAN_OUTCOMES = {"ALWAYS_ALLOWED": "allow", "ALWAYS_DENIED": "deny", "CONDITIONAL": "conditional"}


def _add_request_data(
    entry: dict[str, Any],
    record: Record,
    request: AuthzRequest,
    masker: Masker,
    rules: LogRules,
    full: bool = False,
) -> None:
    exact = True  # whether what is logged is exactly the request's input (for pdp replay)
    if rules.context or full:
        context = _context_of(request)
        if context is not None:
            masked = masker.apply("context", context)
            exact = exact and masked == context
            entry["context"] = masked
        elif request.context is not None or request.context_json:
            exact = False
    if rules.entities or full:
        entities = _entities_of(record.shared_entities) + _entities_of(request.entities_json)
        if entities:
            logged = []
            for e in entities:
                item = {**e, "attrs": masker.apply("attrs", e["attrs"])}
                if "tags" in e:
                    item["tags"] = masker.apply("attrs", e["tags"])
                exact = exact and item == e
                logged.append(item)
            entry["entities"] = logged
    if full or (rules.context and rules.entities):
        entry["inputs"] = "full" if exact else "masked"


def _gateway_fields(gateway: GatewayFields) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": gateway.method,
        "path": gateway.path,
        "route": gateway.route,
        "source_address": gateway.source_address,
        "identity_kind": gateway.identity_kind,
        "http_status": gateway.http_status,
    }
    for name in ("request_id", "trace_id", "token_jti", "token_kid", "token_iss", "authn_failure"):
        value = getattr(gateway, name)
        if value is not None:
            fields[name] = value
    if gateway.path_invalid:
        fields["path_invalid"] = True
    if gateway.unknown_route:
        fields["unknown_route"] = True
    if gateway.dry_run:
        fields["dry_run"] = True
    return fields


def _context_of(request: AuthzRequest) -> Any:
    if request.context is not None:
        return request.context
    if request.context_json:
        try:
            return json.loads(request.context_json)
        except ValueError:
            return None
    return None


def _entities_of(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        items = json.loads(text)
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        attrs = item.get("attrs")
        entity = {
            "uid": uid_text(item.get("uid")),
            "parents": [uid_text(p) for p in item.get("parents") or []],
            "attrs": attrs if isinstance(attrs, Mapping) else {},
        }
        tags = item.get("tags")
        if isinstance(tags, Mapping) and tags:
            entity["tags"] = tags
        out.append(entity)
    return out


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
# The C encoder `_ENCODER.encode` builds on every call, built once: the same bytes without
# the per-call setup (about half of the cost of encoding a line). No cycle check: an entry
# is a tree built for the line (a cycle would still end in RecursionError, counted).
_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_ITERENCODE: Any = (
    _C_ENCODER(
        None,  # markers: no cycle check
        str,  # default
        json.encoder.encode_basestring_ascii,  # ensure_ascii, as _ENCODER
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as _ENCODER
    )
    if _C_ENCODER is not None
    else None
)
_last_second: tuple[int, str] = (-1, "")  # the last whole second, formatted; swapped whole


def _rfc3339(seconds: float) -> str:
    global _last_second
    whole = int(seconds)
    cached = _last_second
    if cached[0] != whole:
        cached = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        _last_second = cached
    return f"{cached[1]}.{int((seconds - whole) * 1e6):06d}Z"


def _plain_line(record: Record, index: int, masker: Masker) -> str:
    """The line of a decision with no gateway, plan, shadow or request data, as text: what
    `_encode(build_entry(...))` writes for it, byte for byte (tests/decisionlog/
    test_log_cost.py holds the two together), without building the dict first."""
    decision = record.decisions[index]
    requests = record.requests
    request = requests[index] if index < len(requests) else None
    if request is not None:
        principal, action, resource = request.principal, request.action, request.resource
        who = _QUOTE(str(principal)) if principal is not None else "null"
        did = _QUOTE(str(action)) if action is not None else "null"
        what = _QUOTE(str(resource)) if resource is not None else "null"
    else:
        who = did = what = "null"
    bundle = record.bundle
    revision = decision.bundle_revision
    errors = decision.errors
    tail = ',"cached":true' if decision.cached else ""
    if record.api in BATCHES:
        tail += f',"batch_index":{index}'
    return (
        f'{{"time":"{_rfc3339(record.time)}","decision_id":{_QUOTE(decision.decision_id)},'
        f'"api":{_QUOTE(record.api)},'
        f'"bundle_name":{_QUOTE(bundle.name) if bundle is not None else "null"},'
        f'"bundle_revision":{_QUOTE(revision) if revision else "null"},'
        f'"principal":{who},"action":{did},"resource":{what},'
        f'"decision":"{"allow" if decision.allowed else "deny"}",'
        f'"determining_policies":[{",".join(map(_QUOTE, decision.determining_policies))}],'
        f'"erroring_policies":[{",".join(map(_QUOTE, decision.erroring_policies))}],'
        f'"errors":[{",".join([_QUOTE(masker.scrub(e)) for e in errors]) if errors else ""}],'
        f'"latency_us":{round(record.seconds * 1e6)}{tail}}}'
    )


_QUOTE = json.encoder.encode_basestring_ascii  # a str as JSON text, ASCII only, quoted


def _encode(entry: dict[str, Any]) -> bytes:
    if _ITERENCODE is None:  # no C accelerator (not CPython)
        return _ENCODER.encode(entry).encode("ascii") + b"\n"
    return "".join(_ITERENCODE(entry, 0)).encode("ascii") + b"\n"
