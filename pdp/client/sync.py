"""`AuthorizerClient`: pdp.v1 over one reused grpc channel, a deadline on every call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from pdp.client import messages
from pdp.client.calls import error_of, timeout_of
from pdp.client.channel import DEFAULT_TIMEOUT, MAX_MESSAGE_BYTES, Tls, options, resolve_tls
from pdp.client.messages import Context, Entities
from pdp.client.types import Decision, Request, Status, UidLike
from pdp.plantypes import Plan
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc


class AuthorizerClient:
    """A pdp server's pdp.v1.Authorizer, from synchronous code; thread-safe, one channel.

    `target` is `HOST:PORT`, `[v6]:PORT` or `unix:/path`; `tls` is None (plaintext: a
    loopback or unix socket sidecar), True (TLS, system roots) or a `Tls` (own CA, mTLS).
    Every call has a deadline: `timeout` seconds unless the call gives its own. A call that
    cannot be decided raises a `PdpError` (`BadRequest`, `Unavailable`, `DeadlineExceeded`,
    ...), never returns a deny. Retries: see `pdp.client.channel`.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: Tls | bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._timeout = timeout_of(timeout, DEFAULT_TIMEOUT)
        chosen = resolve_tls(tls)
        opts = options(chosen, max_message_bytes)
        if chosen is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, chosen.credentials(), options=opts)
        self._stub = pb_grpc.AuthorizerStub(self._channel)

    def is_authorized(
        self,
        principal: UidLike,
        action: UidLike,
        resource: UidLike,
        *,
        context: Context = None,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> Decision:
        """May `principal` do `action` on `resource`? `action` may be a bare name."""
        message = messages.authz_request(principal, action, resource, context, entities)
        return messages.decision(self._call(self._stub.IsAuthorized, message, timeout))

    def batch_is_authorized(
        self,
        requests: Sequence[Request | tuple[Any, ...]],
        *,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> list[Decision]:
        """Many questions in one call, answered in order; a malformed item is a deny naming
        its problem in `errors`, the others are decided normally."""
        message = messages.batch_request(requests, entities)
        response = self._call(self._stub.BatchIsAuthorized, message, timeout)
        return [messages.decision(result) for result in response.results]

    def plan_resources(
        self,
        principal: UidLike,
        action: UidLike,
        resource_type: str,
        *,
        context: Context = None,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> Plan:
        """Which resources of `resource_type` may `principal` do `action` on: a query plan."""
        message = messages.plan_request(principal, action, resource_type, context, entities)
        response = self._call(self._stub.PlanResources, message, timeout)
        return messages.plan(response, resource_type)

    def status(self, *, timeout: float | None = None) -> Status:
        """The server's active bundle and last load error."""
        response = self._call(self._stub.GetStatus, pb.GetStatusRequest(), timeout)
        return messages.status(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AuthorizerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Any, message: Any, timeout: float | None) -> Any:
        try:
            return method(message, timeout=timeout_of(timeout, self._timeout))
        except grpc.RpcError as exc:
            raise error_of(exc) from None
