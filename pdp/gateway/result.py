"""Plain types of the gateway path: the HTTP request in, the HTTP-shaped answer and result out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.model import AuthzRequest, Decision, EntityRef

# The `error` word of a deny's JSON body.
UNAUTHENTICATED, FORBIDDEN, UNKNOWN_ROUTE, UNAVAILABLE = (
    "unauthenticated",
    "forbidden",
    "unknown_route",
    "unavailable",
)
INVALID_REQUEST = "invalid_request"  # over a request limit (too long a path, too many headers)


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """One HTTP request as the proxy describes it, reduced to plain values.

    `peer` and `metadata` are set only when the transport to pdp is trusted; header names
    are lowercase and each maps to all of its values in arrival order.
    """

    method: str
    path: str  # as sent: the query string inside, not yet normalized
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    host: str = ""
    scheme: str = ""
    source_address: str = ""  # the downstream IP, no port
    peer: str | None = None  # mTLS peer principal (e.g. a SPIFFE id)
    metadata: Mapping[str, Mapping[str, Any]] | None = None  # filter metadata namespaces
    context_extensions: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""  # Envoy's `attributes.request.http.id`, as sent


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one `Check` did, for the decision log and metrics; never holds a credential.

    Field names follow the decision log's gateway fields. `decision` is always set: a deny
    decided before Cedar (401, unknown route, internal error) has no determining policies.
    """

    allowed: bool
    http_status: int
    error: str  # "" on allow, else the deny body's `error` word
    reason: str  # short snake_case reason: policy, expired, unknown_route, ...
    message: str  # one sentence for operators (never sent to the client)
    decision: Decision
    method: str = ""
    path: str | None = None  # normalized, without the query string; None: not normalizable
    path_invalid: bool = False  # the path could not be normalized (so it matched no route)
    route: str | None = None  # the matched route's name
    source_address: str = ""
    identity_kind: str = "none"  # jwt, mtls, api_key or none
    principal: EntityRef | None = None
    token_jti: str | None = None
    token_kid: str | None = None
    token_iss: str | None = None
    authn_failure: str | None = None  # the reason a presented credential failed
    unknown_route: bool = False
    request: AuthzRequest | None = None  # the Cedar request, when one was built
    request_id: str | None = None  # Envoy's request id, else a valid x-request-id
    trace_id: str | None = None  # the trace id of a valid W3C traceparent header
    claims: Mapping[str, Any] | None = None  # the verified token's claims (protection's roles)
    dry_run: bool = False  # allowed only because the route is `dry_run: true`

    @property
    def decision_id(self) -> str:
        return self.decision.decision_id

    def gateway_fields(self) -> dict[str, Any]:
        """The decision log's gateway fields, by name."""
        return {
            "method": self.method,
            "path": self.path,
            "path_invalid": self.path_invalid,
            "route": self.route,
            "source_address": self.source_address,
            "identity_kind": self.identity_kind,
            "principal": self.principal,
            "token_jti": self.token_jti,
            "token_kid": self.token_kid,
            "token_iss": self.token_iss,
            "http_status": self.http_status,
            "authn_failure": self.authn_failure,
            "unknown_route": self.unknown_route,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True, slots=True)
class GatewayResponse:
    """The answer in HTTP terms: allow (headers for upstream) or deny (status, headers, body)."""

    allowed: bool
    http_status: int
    headers: tuple[tuple[str, str], ...]  # upstream on allow, to the client on deny
    remove_headers: tuple[str, ...]  # client-sent headers to strip before upstream
    body: str
    metadata: Mapping[str, Any]  # Envoy dynamic metadata
    result: CheckResult
