"""The gateway decision: identity, then route, then policy; every failure is a deny."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from pdp import engine
from pdp.authn.cache import TokenCache
from pdp.authn.identity import (
    INVALID_REQUEST_REASONS,
    JWT,
    Identity,
    identify,
    read_credentials,
)
from pdp.authn.jwt import KeyLookup
from pdp.bundle.compiler import CompiledBundle
from pdp.decisioncache import DecisionCache
from pdp.errors import AuthnError, PathError, RequestError
from pdp.gateway import correlation
from pdp.gateway.result import (
    FORBIDDEN,
    INVALID_REQUEST,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNKNOWN_ROUTE,
    CheckResult,
    GatewayRequest,
    GatewayResponse,
)
from pdp.model import AuthzRequest, Decision, EntityRef, parse_action
from pdp.routes.context import RequestFacts, build_context
from pdp.routes.paths import NormalizedPath, normalize
from pdp.routes.spec import GatewayConfig, IdTemplate, Route, match_route

# Keys of an Envoy route's `context_extensions` that steer the mapping for that route.
ROUTE_KEY, ACTION_KEY, RESOURCE_KEY = "pdp.route", "pdp.action", "pdp.resource"
DEFAULT_UNKNOWN_STATUS = 403
_NO_CACHE = DecisionCache(0)


@dataclass(frozen=True, slots=True)
class Target:
    """The Cedar action and resource a request maps to, and how its context is built."""

    route: str | None
    action: EntityRef
    resource: EntityRef
    context: tuple[tuple[str, str], ...]
    params: Mapping[str, str]
    principal_types: frozenset[str] | None


class _Unmapped(Exception):
    """No route (or a broken context_extensions override): an unknown endpoint."""


def check(
    bundle: CompiledBundle | None,
    request: GatewayRequest,
    lookup: KeyLookup,
    tokens: TokenCache | None = None,
    cache: DecisionCache | None = None,
) -> GatewayResponse:
    """Decide one HTTP request against `bundle`: 401, 403, unknown route, or allow.

    `tokens` is the bundle's token cache (`ActiveTokenCache.get`), None to verify every time;
    `cache` answers a Cedar request (after identity and route) decided before, None: none."""
    call = _Call(bundle, request)
    if bundle is None:
        return call.deny(503, UNAVAILABLE, "no_bundle", "no valid policy bundle is active")
    gateway = bundle.gateway
    if gateway is None:
        return call.deny(
            DEFAULT_UNKNOWN_STATUS, UNKNOWN_ROUTE, "no_routes", "the bundle has no routes.yaml"
        )
    try:
        creds = read_credentials(request.headers, gateway.identity, request.peer, request.metadata)
        identity = identify(creds, gateway.identity, lookup, tokens)
    except AuthnError as exc:
        return call.deny(401, UNAUTHENTICATED, exc.reason, exc.message, authn_failure=exc.reason)
    call.identified(identity)
    if identity.principal is None:
        return call.deny(401, UNAUTHENTICATED, "no_credential", "no credential was presented")
    try:
        path = call.normalized()
        target = _target(gateway, request, path)
    except (PathError, _Unmapped) as exc:
        status = gateway.responses.unknown_route_status
        return call.deny(status, UNKNOWN_ROUTE, "unknown_route", str(exc), unknown_route=True)
    call.fields["route"] = target.route
    response = _decide(call, bundle, gateway, identity, path, target, cache)
    if not response.allowed and target.route is not None:
        route = gateway.route(target.route)
        if route is not None and route.dry_run:
            return call.dry_run(response, gateway)
    return response


def _decide(
    call: _Call,
    bundle: CompiledBundle,
    gateway: GatewayConfig,
    identity: Identity,
    path: NormalizedPath,
    target: Target,
    cache: DecisionCache | None,
) -> GatewayResponse:
    principal = identity.principal
    assert principal is not None
    status = 401 if identity.anonymous else 403
    error = UNAUTHENTICATED if identity.anonymous else FORBIDDEN
    if target.principal_types is not None and principal.uid.type not in target.principal_types:
        return call.deny(
            status,
            error,
            "principal_type",
            f"the schema does not let a {principal.uid.type} perform {target.action}",
        )
    facts = RequestFacts(
        method=call.request.method,
        path=path,
        host=call.request.host,
        scheme=call.request.scheme,
        source_ip=call.request.source_address,
        peer=identity.peer,
        scopes=identity.scopes if identity.kind == JWT else None,
        identity=identity.kind,
        claims=identity.claims,
        params=target.params,
    )
    known = (principal.uid.type, principal.uid.id) in gateway.known_entities
    authz = AuthzRequest(
        principal=principal.uid,
        action=target.action,
        resource=target.resource,
        context=build_context(target.context, facts),
        entities_json=None if known else _entities_json(identity),
    )
    call.fields["request"] = authz
    try:
        decision = (_NO_CACHE if cache is None else cache).decide(bundle, authz)
    except RequestError as exc:
        return call.deny(status, error, "invalid_request", f"Cedar refused the request: {exc}")
    if decision.allowed:
        return call.allow(decision, gateway)
    return call.deny(status, error, "policy", "denied by policy", decision=decision)


def _target(gateway: GatewayConfig, request: GatewayRequest, path: NormalizedPath) -> Target:
    """The route's action and resource, with any context_extensions override applied."""
    route: Route | None
    params: Mapping[str, str] | None
    found: tuple[Route, Mapping[str, str]] | None
    resource: EntityRef | None
    extensions = request.context_extensions
    if not extensions:  # the usual case: the route table alone decides
        matched = match_route(gateway.routes, request.method, path)
        if matched is None:
            raise _Unmapped(f"no route for {request.method} {path.path}")
        route, params = matched.route, matched.params
        resource = route.resource(params)  # its parameters are bound: checked at load
        return Target(
            route.name, route.action, resource, route.context, params, route.principal_types
        )
    route_name = extensions.get(ROUTE_KEY)
    if route_name is not None:
        route = gateway.route(route_name)
        if route is None:
            raise _Unmapped(f"context_extensions names unknown route {route_name!r}")
        params = route.template.match(path.segments)
        if params is None:
            raise _Unmapped(f"path does not fit route {route_name!r}")
        found = (route, params)
    else:
        matched = match_route(gateway.routes, request.method, path)
        found = (matched.route, matched.params) if matched is not None else None
    action_text, resource_text = extensions.get(ACTION_KEY), extensions.get(RESOURCE_KEY)
    if found is None and (action_text is None or resource_text is None):
        raise _Unmapped(f"no route for {request.method} {path.path}")
    route, params = found if found is not None else (None, {})
    try:
        action = route.action if route is not None else None
        if action_text is not None:
            action = parse_action(action_text)
        resource = route.resource(params) if route is not None else None
        if resource_text is not None:
            template = EntityRef.parse(resource_text)
            resource = EntityRef(template.type, IdTemplate(template.id).render(params))
    except (ValueError, KeyError) as exc:
        raise _Unmapped(f"bad context_extensions override: {exc}") from None
    assert action is not None and resource is not None
    overridden = action_text is not None or resource_text is not None
    return Target(
        route=route.name if route is not None else None,
        action=action,
        resource=resource,
        context=route.context if route is not None else gateway.context,
        params=params,
        principal_types=None if overridden or route is None else route.principal_types,
    )


def _entities_json(identity: Identity) -> str:
    """The principal as a Cedar JSON entity list (precomputed for a cached token)."""
    if identity.entities_json is not None:
        return identity.entities_json
    assert identity.principal is not None
    return json.dumps([identity.principal.entity_json()])


class _Call:
    """One Check call's accumulating result fields, and the two ways it ends."""

    def __init__(self, bundle: CompiledBundle | None, request: GatewayRequest) -> None:
        self.bundle = bundle
        self.request = request
        self.revision = bundle.revision if bundle is not None else ""
        headers = request.headers
        # The path is normalized first, so that every deny (a 401 too) logs the path routes
        # see; one that cannot be normalized is logged as null, flagged, never as sent.
        self._path: NormalizedPath | None = None
        self._path_error: PathError | None = None
        if request.path:
            try:
                self._path = normalize(request.path)
            except PathError as exc:
                self._path_error = exc
            except Exception as exc:  # never let logging a deny fail it: no path, no route
                self._path_error = PathError(f"path not normalized: {type(exc).__name__}")
        self.fields: dict[str, Any] = {
            "method": request.method,
            "path": self._path.path if self._path is not None else None,
            "path_invalid": self._path_error is not None,
            "source_address": request.source_address,
            "request_id": correlation.request_id(request.request_id, headers),
            "trace_id": correlation.trace_id(headers) if headers else None,
        }

    def normalized(self) -> NormalizedPath:
        """The normalized path; PathError when it has none."""
        if self._path is None:
            raise self._path_error or PathError("empty path")
        return self._path

    def identified(self, identity: Identity) -> None:
        self.fields["identity_kind"] = identity.kind
        if identity.principal is not None:
            self.fields["principal"] = identity.principal.uid
        if identity.claims is not None:
            self.fields["claims"] = identity.claims
        token = identity.token
        if token is not None:
            self.fields["token_iss"] = token.issuer.issuer
            self.fields["token_kid"] = token.kid
            self.fields["token_jti"] = token.jti

    def allow(self, decision: Decision, gateway: GatewayConfig) -> GatewayResponse:
        principal: EntityRef = self.fields["principal"]
        names = gateway.responses
        headers = (
            (names.principal_header, principal.header_text()),
            (names.decision_id_header, decision.decision_id),
        )
        result = CheckResult(
            allowed=True,
            http_status=200,
            error="",
            reason="",
            message="allowed by policy",
            decision=decision,
            **self.fields,
        )
        return GatewayResponse(
            True, 200, headers, names.remove_headers, "", _metadata(result), result
        )

    def dry_run(self, denied: GatewayResponse, gateway: GatewayConfig) -> GatewayResponse:
        """A `dry_run: true` route: answer allow, and log the real (deny) decision."""
        real = denied.result
        answered = self.allow(real.decision, gateway)
        result = replace(
            real, allowed=True, http_status=200, dry_run=True, message=f"dry run: {real.message}"
        )
        return replace(answered, result=result, metadata=_metadata(result))

    def deny(
        self,
        status: int,
        error: str,
        reason: str,
        message: str,
        decision: Decision | None = None,
        **extra: Any,
    ) -> GatewayResponse:
        if decision is None:
            decision = Decision(
                allowed=False,
                determining_policies=(),
                erroring_policies=(),
                errors=(message,),
                decision_id=engine.new_decision_id(),
                bundle_revision=self.revision,
            )
        result = CheckResult(
            allowed=False,
            http_status=status,
            error=error,
            reason=reason,
            message=message,
            decision=decision,
            **{**self.fields, **extra},
        )
        headers = [("content-type", "application/json")]
        if status == 401:
            bearer = _challenge(result.authn_failure)
            headers.append(("www-authenticate", bearer))
        # What json.dumps({"error": ..., "decision_id": ...}) writes, without its overhead.
        body = f'{{"error": {_quote(error)}, "decision_id": {_quote(decision.decision_id)}}}'
        return GatewayResponse(False, status, tuple(headers), (), body, _metadata(result), result)


def _challenge(authn_failure: str | None) -> str:
    """The WWW-Authenticate value of a 401 (RFC 6750 error codes)."""
    if authn_failure is None:
        return "Bearer"  # no credential, or an anonymous deny
    if authn_failure in INVALID_REQUEST_REASONS:
        return 'Bearer error="invalid_request"'  # presented in a form pdp does not read
    return 'Bearer error="invalid_token"'


def refused(
    bundle: CompiledBundle | None, request: GatewayRequest, status: int, reason: str, message: str
) -> GatewayResponse:
    """The deny for a request refused before any decision (over a limit, past its deadline)."""
    error = UNAVAILABLE if status >= 500 else INVALID_REQUEST
    return _Call(bundle, request).deny(status, error, reason, message)


def internal_error(
    bundle: CompiledBundle | None, request: GatewayRequest, exc: BaseException
) -> GatewayResponse:
    """The deny for a failure nobody expected: 403, never an allow, never the details."""
    return _Call(bundle, request).deny(
        403, FORBIDDEN, "internal_error", f"internal error: {type(exc).__name__}"
    )


def _metadata(result: CheckResult) -> dict[str, Any]:
    """Envoy dynamic metadata: for access logs and later filters, not for the client."""
    metadata: dict[str, Any] = {
        "decision_id": result.decision_id,
        "decision": "allow" if result.allowed else "deny",
        "determining_policies": list(result.decision.determining_policies),
        "bundle_revision": result.decision.bundle_revision,
        "identity": result.identity_kind,
    }
    if result.principal is not None:
        metadata["principal"] = result.principal.header_text()
    if result.route is not None:
        metadata["route"] = result.route
    if not result.allowed:
        metadata["reason"] = result.reason
    if result.dry_run:  # allowed by the route's dry run; the policy said deny
        metadata["dry_run"] = True
        metadata["policy_decision"] = result.decision.word
        metadata["reason"] = result.reason
    return metadata
