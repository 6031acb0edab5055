"""/forward-auth: the Check pipeline (identity -> route -> policy) for nginx, Traefik and Caddy.

The proxy asks about the request it holds: its method and URI come from `X-Original-Method`
/ `X-Original-URI` (nginx `auth_request`) or `X-Forwarded-Method` / `X-Forwarded-Uri`
(Traefik ForwardAuth, Caddy `forward_auth`), its credentials from the headers the proxy
passes on. Those headers are believed only from a trusted proxy (`--http-trusted-proxies`,
default loopback; a Unix socket peer is trusted): anyone else is refused (403) and nothing
is decided on a path the caller chose. Both header families at once with different values
are refused too (a client can send the family its proxy does not overwrite).
Answers: 200 with `x-pdp-principal` and `x-pdp-decision-id` on allow; on deny the status
`Check` would give Envoy (401 with WWW-Authenticate, 403, the unknown route status, 503
without a bundle) and its JSON body.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from typing import Any

from pdp.decisionlog import FORWARD_AUTH
from pdp.errors import ForwardAuthRefused
from pdp.gateway.check import internal_error, refused
from pdp.gateway.result import GatewayRequest, GatewayResponse
from pdp.http.jsonio import NO_STORE
from pdp.http.messages import Request, Response
from pdp.http.proxies import TrustedProxies
from pdp.live.store import BundleStore
from pdp.server.extauthz import ExtAuthzService, recorder_listener
from pdp.server.limits import Limits

log = logging.getLogger("pdp.http.forward")

_NO_REQUEST = GatewayRequest(method="", path="")
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")
_SCHEMES = ("http", "https")


class ForwardAuth:
    """Answers /forward-auth on the gateway service's key sets, token cache and bundle."""

    def __init__(
        self,
        store: BundleStore,
        gateway: ExtAuthzService,
        proxies: TrustedProxies,
        limits: Limits,
        recorder: Any = None,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.proxies = proxies
        self.limits = limits
        self.listener = recorder_listener(recorder, FORWARD_AUTH)

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        bundle = self.store.current
        plain = _NO_REQUEST
        try:
            if not self.proxies.trusts(request.peer):
                raise ForwardAuthRefused(
                    403,
                    "untrusted_proxy",
                    f"peer {request.peer} is not a trusted proxy (--http-trusted-proxies): "
                    "its forwarding headers are not believed",
                )
            plain = self.gateway_request(request)
            answer = await self.gateway.decide(bundle, plain, None)
        except ForwardAuthRefused as exc:
            answer = refused(bundle, plain, exc.status, exc.reason, exc.message)
        except Exception as exc:  # fail closed: a deny, never an allow or a 500
            log.error(
                "forward-auth failed; denied",
                extra={
                    "event": "forward_auth_internal_error",
                    "error": type(exc).__name__,
                    "where": "".join(traceback.format_tb(exc.__traceback__)[-3:]),
                },
            )
            answer = internal_error(bundle, plain, exc)
        if self.listener is not None:
            try:
                self.listener(answer.result, bundle, started)
            except Exception:
                log.exception("forward-auth listener failed", extra={"event": "listener_error"})
        return http_response(answer)

    def gateway_request(self, request: Request) -> GatewayRequest:
        """The request the proxy describes; ForwardAuthRefused when it is not clearly one."""
        method = _original(request, "x-original-method", "x-forwarded-method")
        uri = _original(request, "x-original-uri", "x-forwarded-uri")
        if not _METHOD.match(method):
            raise ForwardAuthRefused(
                400, "bad_original_request", "the original method is not an HTTP method"
            )
        if not uri.startswith("/"):
            raise ForwardAuthRefused(
                400, "bad_original_request", "the original URI must be a path starting with /"
            )
        size = len(uri.encode("utf-8", "surrogateescape"))
        if size > self.limits.max_path_bytes:
            raise ForwardAuthRefused(
                414,
                "limit_exceeded",
                f"the original URI is {size} bytes, over the limit of "
                f"{self.limits.max_path_bytes} (--max-path-bytes)",
            )
        headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            headers.setdefault(name, []).append(value)
        host = _single(request, "x-forwarded-host") or request.header("host") or ""
        scheme = (_single(request, "x-forwarded-proto") or "").lower()
        if scheme not in _SCHEMES:
            scheme = "https" if request.tls else "http"
        return GatewayRequest(
            method=method.upper(),
            path=uri,
            headers={name: tuple(values) for name, values in headers.items()},
            host=host,
            scheme=scheme,
            source_address=self.proxies.client(request.values("x-forwarded-for"), request.peer),
        )


def _original(request: Request, nginx: str, others: str) -> str:
    """The one value the two header families give; ForwardAuthRefused when none, or when
    they differ."""
    values = set(request.values(nginx)) | set(request.values(others))
    if not values:
        raise ForwardAuthRefused(
            400,
            "missing_original_request",
            f"{nginx} or {others} is required: the proxy sets it to the request it asks about",
        )
    if len(values) > 1:
        raise ForwardAuthRefused(
            400,
            "conflicting_original_request",
            f"{nginx} and {others} disagree (or repeat): the proxy must overwrite the one it "
            "sets and clear the other",
        )
    return values.pop()


def _single(request: Request, name: str) -> str | None:
    values = request.values(name)
    return values[0].strip() if len(values) == 1 else None


def http_response(answer: GatewayResponse) -> Response:
    """The gateway answer as the proxy reads it: 2xx with headers for upstream, or the deny."""
    if answer.allowed:
        return Response(200, b"", [*answer.headers, NO_STORE])
    return Response(answer.http_status, answer.body.encode("utf-8"), [*answer.headers, NO_STORE])
