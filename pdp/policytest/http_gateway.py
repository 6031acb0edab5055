"""Runs HTTP cases through the gateway's Check pipeline, with claims taken as already verified.

The runner signs nothing. A case's `claims` reach the gateway the way Envoy's `jwt_authn`
filter hands over a payload it verified (trusted metadata), so identity mapping, routes,
context and policy all run for real and only the signature check is skipped. A `spiffe` id
is the mTLS peer, as Envoy reports it. Bearer tokens written into a case's headers are still
verified, against the bundle's JWKS files only (nothing is fetched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pdp.authn.config import JwtAuthnMetadata
from pdp.bundle.compiler import CompiledBundle
from pdp.gateway.check import check
from pdp.gateway.result import GatewayRequest
from pdp.policytest.checker import HttpChecker, HttpOutcome
from pdp.policytest.model import HttpCase
from pdp.routes.spec import GatewayConfig

UNAVAILABLE = "gateway not available"
NO_SIGNATURES = "HTTP cases: claims are taken as verified (nothing is signed or checked)"


def gateway_checker(bundle: CompiledBundle) -> tuple[HttpChecker | None, str]:
    """An HttpChecker over `bundle`'s routes.yaml, or None and the reason there is none."""
    gateway = bundle.gateway
    if gateway is None:  # a bundle with routes.yaml that does not compile does not load
        return None, f"{UNAVAILABLE} (the bundle has no routes.yaml)"
    metadata = gateway.identity.jwt_authn or JwtAuthnMetadata()
    identity = dataclasses.replace(gateway.identity, jwt_authn=metadata)
    trusting = dataclasses.replace(gateway, identity=identity)
    return GatewayChecker(dataclasses.replace(bundle, gateway=trusting), metadata), NO_SIGNATURES


class GatewayChecker:
    """Decides HTTP cases with `pdp.gateway.check.check` on a bundle that trusts given claims."""

    def __init__(self, bundle: CompiledBundle, metadata: JwtAuthnMetadata) -> None:
        assert bundle.gateway is not None
        self._bundle = bundle
        self._gateway: GatewayConfig = bundle.gateway
        self._metadata = metadata
        self.routes: tuple[str, ...] = tuple(route.name for route in self._gateway.routes)

    def check_http(self, case: HttpCase) -> HttpOutcome:
        headers: dict[str, tuple[str, ...]] = {}
        for name, value in case.headers:
            headers[name] = (*headers.get(name, ()), value)
        metadata = None
        if case.identity.claims is not None:
            claims = self._with_issuer(dict(case.identity.claims))
            if "iss" not in claims and self._issuers:
                return HttpOutcome(status=0, allowed=False, problem=self._no_issuer())
            metadata = {self._metadata.namespace: {self._metadata.key: claims}}
        request = GatewayRequest(
            method=case.method,
            path=case.path,
            headers=headers,
            host=headers.get("host", ("",))[0],
            scheme="https",
            source_address=case.source_ip,
            peer=case.identity.spiffe,
            metadata=metadata,
            request_id=f"pdp-test:{case.where}",
        )
        response = check(self._bundle, request, _bundle_keys_only)
        result = response.result
        authz = result.request
        detail = f"gateway: {result.reason or 'allowed'}: {result.message}"
        errors = tuple(result.decision.errors)
        if result.reason == "unknown_issuer" and metadata is not None:
            # The runner stands in for Envoy's jwt_authn filter, which the bundle may not use.
            untrusted = self._untrusted(case.identity.claims or {})
            detail, errors = f"gateway: unknown_issuer: {untrusted}", (untrusted,)
        return HttpOutcome(
            status=response.http_status,
            allowed=response.allowed,
            determining_policies=tuple(result.decision.determining_policies),
            errors=errors,
            route=result.route,
            action=authz.action if authz is not None else None,
            detail=detail,
        )

    @property
    def _issuers(self) -> tuple[str, ...]:
        jwt = self._gateway.identity.jwt
        return tuple(jwt.issuers) if jwt is not None else ()

    def _with_issuer(self, claims: dict[str, Any]) -> dict[str, Any]:
        """Fill `iss` when the bundle trusts exactly one issuer and the case leaves it out."""
        if "iss" not in claims and len(self._issuers) == 1:
            claims["iss"] = self._issuers[0]
        return claims

    def _no_issuer(self) -> str:
        issuers = ", ".join(self._issuers)
        return (
            f"the case's claims have no `iss`, and the bundle trusts {len(self._issuers)} "
            f"issuers ({issuers}): add `iss: <one of them>` to the claims to say whose token "
            "they stand for"
        )

    def _untrusted(self, claims: Any) -> str:
        iss = claims.get("iss") if isinstance(claims, Mapping) else None
        if not self._issuers:
            return "the case gives claims, but the bundle trusts no JWT issuer (identity.jwt)"
        return (
            f"the case's claims have iss {iss!r}, not one of the bundle's issuers "
            f"({', '.join(self._issuers)})"
        )


def _bundle_keys_only(issuer: Any, kid: str | None, algorithm: str) -> Any:
    """JWT keys from the bundle's JWKS files; JWKS URLs are never fetched by a test run."""
    keys = getattr(issuer, "keys", None)
    return keys.get(kid, algorithm) if keys is not None else None
