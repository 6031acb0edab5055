"""`AsyncAuthorizerClient`: the same calls as `AuthorizerClient`, for asyncio code."""

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


class AsyncAuthorizerClient:
    """pdp.v1.Authorizer from asyncio code: one grpc.aio channel per client, made on the
    event loop of its first call (use the client on that loop only).

    Same arguments, calls, errors and retries as `AuthorizerClient`; `async with` or
    `await close()`.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: Tls | bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._target = target
        self._timeout = timeout_of(timeout, DEFAULT_TIMEOUT)
        self._tls = resolve_tls(tls)
        self._credentials = self._tls.credentials() if self._tls is not None else None
        self._options = options(self._tls, max_message_bytes)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.AuthorizerStub | None = None

    async def is_authorized(
        self,
        principal: UidLike,
        action: UidLike,
        resource: UidLike,
        *,
        context: Context = None,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> Decision:
        message = messages.authz_request(principal, action, resource, context, entities)
        response = await self._call("IsAuthorized", message, timeout)
        return messages.decision(response)

    async def batch_is_authorized(
        self,
        requests: Sequence[Request | tuple[Any, ...]],
        *,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> list[Decision]:
        message = messages.batch_request(requests, entities)
        response = await self._call("BatchIsAuthorized", message, timeout)
        return [messages.decision(result) for result in response.results]

    async def plan_resources(
        self,
        principal: UidLike,
        action: UidLike,
        resource_type: str,
        *,
        context: Context = None,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> Plan:
        message = messages.plan_request(principal, action, resource_type, context, entities)
        response = await self._call("PlanResources", message, timeout)
        return messages.plan(response, resource_type)

    async def status(self, *, timeout: float | None = None) -> Status:
        response = await self._call("GetStatus", pb.GetStatusRequest(), timeout)
        return messages.status(response)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    async def __aenter__(self) -> AsyncAuthorizerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _stub_now(self) -> pb_grpc.AuthorizerStub:
        if self._stub is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self._target, self._credentials, options=self._options
                )
            self._stub = pb_grpc.AuthorizerStub(self._channel)
        return self._stub

    async def _call(self, name: str, message: Any, timeout: float | None) -> Any:
        method = getattr(self._stub_now(), name)
        try:
            return await method(message, timeout=timeout_of(timeout, self._timeout))
        except grpc.RpcError as exc:
            raise error_of(exc) from None
