"""The pdp.v1.Authorizer servicer: convert, call the engine, map errors to status codes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2

import pdp
from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.bundle.store import BundleStore
from pdp.decisionlog import BATCH_IS_AUTHORIZED, IS_AUTHORIZED, LazyRequests, Recorder
from pdp.errors import LimitExceeded, RequestError
from pdp.model import AuthzRequest, Decision
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
        recorder: Recorder | None = None,
    ) -> None:
        self._recorder = recorder or Recorder()
        self._store = store
        self._limits = limits
        self._bundle_path = bundle_path
        self._started_at = started_at or datetime.now(UTC).timestamp()

    async def IsAuthorized(
        self, request: pb.IsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.IsAuthorizedResponse:
        started = time.perf_counter()
        bundle = await self._bundle(context, IS_AUTHORIZED, started)
        try:
            authz = convert.authz_request(request)
            decision = engine.decide(bundle, authz)
        except RequestError as exc:
            self._recorder.failed(IS_AUTHORIZED, started, _status(exc).name)
            await _abort(context, convert.named_as_sent(exc, request))
        self._recorder.decision(IS_AUTHORIZED, started, bundle, decision, authz)
        return convert.response(decision)

    async def BatchIsAuthorized(
        self, request: pb.BatchIsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchIsAuthorizedResponse:
        started = time.perf_counter()
        bundle = await self._bundle(context, BATCH_IS_AUTHORIZED, started)
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
            self._recorder.failed(BATCH_IS_AUTHORIZED, started, _status(exc).name)
            await _abort(context, convert.named_as_sent(exc, request))
        items = LazyRequests(request.requests, _logged_request)
        self._recorder.batch(BATCH_IS_AUTHORIZED, started, bundle, decisions, items, shared)
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
            pid=os.getpid(),
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

    async def _bundle(
        self, context: grpc.aio.ServicerContext, api: str = "", started: float = 0.0
    ) -> CompiledBundle:
        bundle = self._store.current
        if bundle is None:
            if api:
                self._recorder.failed(api, started, grpc.StatusCode.UNAVAILABLE.name)
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


def _logged_request(item: pb.IsAuthorizedRequest) -> AuthzRequest | None:
    """A batch item as the decision log shows it (None when malformed); runs off the call."""
    try:
        return convert.authz_request(item)
    except RequestError:
        return None


def _status(error: RequestError) -> grpc.StatusCode:
    if isinstance(error, LimitExceeded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.INVALID_ARGUMENT


async def _abort(context: grpc.aio.ServicerContext, error: RequestError) -> None:
    await context.abort(_status(error), str(error))


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
