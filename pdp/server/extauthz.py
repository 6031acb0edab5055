"""The envoy.service.auth.v3.Authorization servicer: convert, run the gateway check, answer."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from jwt import PyJWK

from pdp.authn.cache import ActiveTokenCache, TokenCache
from pdp.authn.identity import key_lookup, pending_fetch
from pdp.authn.jwks import Keyring
from pdp.authn.jwt import Issuer, KeyLookup
from pdp.bundle.compiler import CompiledBundle
from pdp.decisioncache import DecisionCache
from pdp.decisionlog import CHECK, GatewayFields, Recorder
from pdp.errors import DeadlineExceeded, ErrorCode, HttpLimitExceeded
from pdp.gateway.check import check, internal_error, refused
from pdp.gateway.result import CheckResult, GatewayRequest, GatewayResponse
from pdp.live.store import BundleStatus, BundleStore
from pdp.protection import Protection
from pdp.server import envoy
from pdp.server.limits import Limits
from pdp.server.limits.http import check_http

log = logging.getLogger("pdp.server.extauthz")

EXT_AUTHZ_SERVICE = pb.DESCRIPTOR.services_by_name["Authorization"].full_name
# Called once per Check with its result, the bundle it was decided on, and the call's start
# (`time.perf_counter()`); must not block or raise (errors are logged and ignored).
CheckListener = Callable[[CheckResult, CompiledBundle | None, float], None]
_NO_REQUEST = GatewayRequest(method="", path="")  # what a deny describes when decoding failed
JWKS_WAIT_SECONDS = 1.0  # at most this long for a key set fetch; then the cached keys decide
# The deny `reason` of a Check refused before any decision (its status is the error's).
REFUSED = {
    ErrorCode.RESOURCE_EXHAUSTED: "limit_exceeded",
    ErrorCode.DEADLINE_EXCEEDED: "deadline_exceeded",
}


@dataclass(frozen=True, slots=True)
class ExtAuthzConfig:
    """What the Check servicer needs of the server's configuration."""

    listen: str = ""  # the listen address, for the plaintext-transport warning
    client_ca: str | None = None  # set: clients present certificates (mTLS)
    trust_plaintext_peer: bool = False  # trust Envoy's source.principal on plaintext TCP
    limits: Limits = field(default_factory=Limits)
    decision_cache: DecisionCache | None = None  # exact decisions, shared with IsAuthorized
    jwks_wait_seconds: float = JWKS_WAIT_SECONDS  # how long a Check waits for a key set fetch


# xds-protos ships no type information: the generated servicer base is Any to mypy.
class ExtAuthzService(pb_grpc.AuthorizationServicer):  # type: ignore[misc]
    """Thin servicer: every Check is answered with a status, a deny whenever anything fails."""

    def __init__(
        self,
        store: BundleStore,
        config: ExtAuthzConfig | None = None,
        keyring: Keyring | None = None,
        on_result: CheckListener | None = None,
        clock: Callable[[], float] = time.time,  # judges cached tokens' expiry; tests inject
        protection: Protection | None = None,  # rate limits and detectors (protection.yaml)
    ) -> None:
        config = config or ExtAuthzConfig()
        self._store = store
        self._keyring = keyring or Keyring()
        self._lookup = key_lookup(self._keyring)
        self.tokens = ActiveTokenCache(self._keyring, clock)
        self._trust_plaintext = config.trust_plaintext_peer
        self._on_result = on_result
        self._warned = False
        self._listen = config.listen
        self._client_ca = config.client_ca
        self._limits = config.limits
        self._jwks_wait = config.jwks_wait_seconds
        self.protection = protection
        cache = config.decision_cache  # the HTTP edge shares it
        self.cache = cache if cache is not None else DecisionCache(0)
        self._offline = cached_key_lookup(self._keyring)  # never fetches: safe on the loop
        store.subscribe(self._check_transport)
        store.subscribe(self._activate_tokens)

    async def Check(
        self,
        request: pb.CheckRequest,
        context: grpc.aio.ServicerContext[pb.CheckRequest, pb.CheckResponse],
    ) -> pb.CheckResponse:
        started = time.perf_counter()
        bundle = self._store.current
        plain = _NO_REQUEST
        try:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:  # no work for an expired call
                raise DeadlineExceeded("the call's deadline passed before the check started")
            check_http(request, self._limits)  # raw lengths, before any conversion
            plain = envoy.gateway_request(request, self._trusted(context))
            response = await self.decide(bundle, plain, remaining)
        except (HttpLimitExceeded, DeadlineExceeded) as exc:
            response = refused(bundle, plain, exc.http_status, REFUSED[exc.code], str(exc))
        except Exception as exc:  # fail closed: a deny, never an error status or an allow
            log.error(
                "Check failed; denied",
                extra={
                    "event": "check_internal_error",
                    "error": type(exc).__name__,
                    "where": "".join(traceback.format_tb(exc.__traceback__)[-3:]),
                },
            )
            response = internal_error(bundle, plain, exc)
        self._observe(response.result, bundle, started)
        try:
            return envoy.check_response(response)
        except Exception as exc:  # even the encoding failing must still be a deny with a status
            log.error("Check response failed; denied", extra={"error": type(exc).__name__})
            return envoy.fallback_deny(response.result.decision_id)

    async def decide(
        self, bundle: CompiledBundle | None, plain: GatewayRequest, remaining: float | None
    ) -> GatewayResponse:
        """Identity, route and policy for one request, on this service's key sets and token
        cache (shared by Check and the HTTP edge's /forward-auth); then protection, if any."""
        gateway = bundle.gateway if bundle is not None else None
        tokens = self.tokens.get(gateway.identity.jwt) if gateway is not None else None
        if gateway is not None and pending_fetch(
            plain.headers, gateway.identity, self._keyring, tokens
        ):  # verifying would fetch a JWKS URL: off the event loop, for a bounded wait
            response = await self._fetching(bundle, plain, tokens, remaining)
        else:
            response = check(bundle, plain, self._offline, tokens, self.cache)
        if self.protection is not None:  # limits, blocks and detectors (pdp/protection/guard.py)
            response = await self.protection.guard(bundle, plain, response)
        return response

    async def _fetching(
        self,
        bundle: CompiledBundle | None,
        plain: GatewayRequest,
        tokens: TokenCache | None,
        remaining: float | None,
    ) -> GatewayResponse:
        """Check in a thread that may fetch a key set; past the configured wait (JWKS_WAIT_SECONDS,
        or the call's deadline if sooner), check again on the loop with the keys at hand."""
        wait = min(self._jwks_wait, remaining or self._jwks_wait)
        fetching = asyncio.to_thread(check, bundle, plain, self._lookup, tokens, self.cache)
        try:
            return await asyncio.wait_for(fetching, wait)
        except TimeoutError:  # the fetch goes on in its thread, under its own timeout
            log.warning(
                "key set fetch is slow; deciding with the cached keys",
                extra={"event": "jwks_wait_exceeded", "wait_seconds": wait},
            )
        return check(bundle, plain, self._offline, tokens, self.cache)

    def _trusted(
        self, context: grpc.aio.ServicerContext[pb.CheckRequest, pb.CheckResponse]
    ) -> bool:
        """Whether Envoy's assertions (source.principal, metadata) come over a trusted channel."""
        if context.peer().startswith("unix:"):
            return True
        if self._client_ca:  # only then can a client certificate have been verified
            auth = context.auth_context() or {}  # (costly: read only where it can matter)
            if auth.get("x509_pem_cert") or auth.get("x509_common_name"):
                return True  # a client certificate the server verified (mTLS)
        return self._trust_plaintext

    def _observe(self, result: CheckResult, bundle: CompiledBundle | None, started: float) -> None:
        if self._on_result is not None:
            try:
                self._on_result(result, bundle, started)
            except Exception:
                log.exception("Check listener failed", extra={"event": "check_listener_error"})

    def _activate_tokens(self, status: BundleStatus) -> None:
        """A new bundle gets an empty token cache; tokens verified under the old one are gone."""
        gateway = status.bundle.gateway if status.bundle is not None else None
        self.tokens.activate(gateway.identity.jwt if gateway is not None else None)

    def _check_transport(self, status: BundleStatus) -> None:
        """Warn (once) when a bundle trusts Envoy's assertions on a plaintext TCP port."""
        bundle = status.bundle
        gateway = bundle.gateway if bundle is not None else None
        if self._warned or gateway is None or not gateway.identity.uses_transport_trust:
            return
        if self._listen.startswith("unix:") or self._client_ca:
            return
        self._warned = True
        sources = [n for n in ("mtls", "jwt_authn") if getattr(gateway.identity, n) is not None]
        consequence = (
            "trusted from ANY caller that can reach the port (--trust-plaintext-peer)"
            if self._trust_plaintext
            else "ignored unless the call arrives over mTLS or a unix socket"
        )
        log.warning(
            f"routes.yaml uses {' and '.join(sources)} identity on plaintext TCP "
            f"{self._listen}: source.principal and metadata_context are {consequence}",
            extra={"event": "untrusted_transport", "listen": self._listen, "sources": sources},
        )


def recorder_listener(recorder: Recorder | None, api: str = CHECK) -> CheckListener | None:
    """A listener feeding the decision log and metrics, if there is a recorder; `api` is what
    the lines and metrics call the edge (`Check`, `ForwardAuth`)."""
    if recorder is None:
        return None

    def listen(result: CheckResult, bundle: CompiledBundle | None, started: float) -> None:
        gateway = GatewayFields(**result.gateway_fields())
        recorder.decision(api, started, bundle, result.decision, result.request, gateway)

    return listen


def cached_key_lookup(keyring: Keyring) -> KeyLookup:
    """Keys as `key_lookup` finds them, but only those at hand: a URL key set is never fetched,
    so a slow or dead JWKS endpoint cannot block the event loop."""

    def lookup(issuer: Issuer, kid: str | None, algorithm: str) -> PyJWK | None:
        key = issuer.keys.get(kid, algorithm) if issuer.keys is not None else None
        if key is None and issuer.jwks_url is not None:
            key = keyring.source(issuer.jwks_url).cached(kid, algorithm)
        return key

    return lookup
