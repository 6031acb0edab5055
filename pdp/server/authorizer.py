"""The pdp.v1.Authorizer servicer: convert, call the engine, map errors to status codes."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2

import pdp
from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.bundle.store import BundleStore
from pdp.errors import LimitExceeded, RequestError
from pdp.model import Decision
from pdp.server import convert
from pdp.server.limits import Limits
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc

NO_BUNDLE = "no valid policy bundle is active; see GetStatus for the last load error"


class AuthorizerService(pb_grpc.AuthorizerServicer):
    """Thin servicer: every decision is made on one bundle snapshot read once per call."""

    def __init__(
        self,
        store: BundleStore,
        limits: Limits,
        bundle_path: str = "",
        started_at: float | None = None,
    ) -> None:
        self._store = store
        self._limits = limits
        self._bundle_path = bundle_path
        self._started_at = started_at or datetime.now(UTC).timestamp()

    async def IsAuthorized(
        self, request: pb.IsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.IsAuthorizedResponse:
        bundle = await self._bundle(context)
        try:
            decision = engine.decide(bundle, convert.authz_request(request))
        except RequestError as exc:
            await _abort(context, convert.named_as_sent(exc, request))
        return convert.response(decision)

    async def BatchIsAuthorized(
        self, request: pb.BatchIsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchIsAuthorizedResponse:
        bundle = await self._bundle(context)
        try:
            if len(request.requests) > self._limits.max_batch_items:
                raise LimitExceeded(
                    "requests",
                    f"{len(request.requests)} items is over the batch limit of "
                    f"{self._limits.max_batch_items}",
                )
            shared = convert.entities_json(request.entities, request.entities_json, "entities")
            decisions = _decide_items(bundle, request, shared)
        except RequestError as exc:
            await _abort(context, convert.named_as_sent(exc, request))
        return pb.BatchIsAuthorizedResponse(results=[convert.response(d) for d in decisions])

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        status = self._store.status
        bundle = status.bundle
        response = pb.GetStatusResponse(
            serving=status.serving,
            bundle_path=self._bundle_path,
            activations=status.activations,
            load_failures=status.load_failures,
            last_error=status.last_error,
            version=pdp.__version__,
            started_at=_timestamp(self._started_at),
        )
        if bundle is not None:
            response.bundle_name = bundle.name
            response.bundle_revision = bundle.revision
            response.policy_count = bundle.policy_count
            response.template_link_count = bundle.link_count
            response.entity_count = bundle.entity_count
            response.warnings.extend(str(w) for w in bundle.warnings)
        if status.activated_at is not None:
            response.activated_at.CopyFrom(_timestamp(status.activated_at))
        if status.last_error_at is not None:
            response.last_error_at.CopyFrom(_timestamp(status.last_error_at))
        return response

    async def _bundle(self, context: grpc.aio.ServicerContext) -> CompiledBundle:
        bundle = self._store.current
        if bundle is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, NO_BUNDLE)
        return bundle


def _decide_items(
    bundle: CompiledBundle, request: pb.BatchIsAuthorizedRequest, shared: str | None
) -> list[Decision]:
    """Convert each item (a malformed one becomes a deny) and decide the rest in one batch."""
    converted = []
    positions = []
    malformed: dict[int, Decision] = {}
    for index, item in enumerate(request.requests):
        try:
            converted.append(convert.authz_request(item, prefix=f"requests[{index}]."))
            positions.append(index)
        except RequestError as exc:
            malformed[index] = engine.malformed_decision(bundle, exc)
    decided = iter(engine.decide_batch(bundle, converted, shared, positions))
    return [malformed[i] if i in malformed else next(decided) for i in range(len(request.requests))]


async def _abort(context: grpc.aio.ServicerContext, error: RequestError) -> None:
    code = (
        grpc.StatusCode.RESOURCE_EXHAUSTED
        if isinstance(error, LimitExceeded)
        else grpc.StatusCode.INVALID_ARGUMENT
    )
    await context.abort(code, str(error))


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
