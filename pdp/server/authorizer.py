"""The pdp.v1.Authorizer servicer: convert, call the engine, map errors to status codes."""

from __future__ import annotations

import logging
import os
import traceback
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
from google.protobuf import timestamp_pb2

import pdp
from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.decisioncache import DecisionCache
from pdp.decisionlog import (
    BATCH_IS_AUTHORIZED,
    IS_AUTHORIZED,
    PLAN_RESOURCES,
    Recorder,
)
from pdp.errors import DeadlineExceeded, NoBundleError, RequestError
from pdp.live.store import BundleStore
from pdp.protection import Protection
from pdp.server import convert
from pdp.server.calls import Calls
from pdp.server.limits import Limits
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc

# Errors answered with their own status (errors.STATUS) and message; anything else is INTERNAL.
ANSWERED = (RequestError, DeadlineExceeded, NoBundleError)

log = logging.getLogger("pdp.server.authorizer")


class AuthorizerService(pb_grpc.AuthorizerServicer):
    """Thin servicer: every decision is made on one bundle snapshot read once per call."""

    def __init__(
        self,
        store: BundleStore,
        limits: Limits,
        bundle_path: str = "",
        started_at: float | None = None,
        recorder: Recorder | None = None,
        protection: Protection | None = None,
        cache: DecisionCache | None = None,
    ) -> None:
        self._recorder = recorder or Recorder()
        self._protection = protection
        self._store = store
        self._calls = Calls(
            store, limits, self._recorder, cache if cache is not None else DecisionCache(0)
        )
        self._bundle_path = bundle_path
        self._started_at = started_at or datetime.now(UTC).timestamp()

    async def IsAuthorized(
        self,
        request: pb.IsAuthorizedRequest,
        context: grpc.aio.ServicerContext[pb.IsAuthorizedRequest, pb.IsAuthorizedResponse],
    ) -> pb.IsAuthorizedResponse:
        try:
            decision = self._calls.is_authorized(request, context.time_remaining())
        except Exception as exc:
            await self._abort(context, IS_AUTHORIZED, exc)
        return convert.response(decision)

    async def BatchIsAuthorized(
        self,
        request: pb.BatchIsAuthorizedRequest,
        context: grpc.aio.ServicerContext[
            pb.BatchIsAuthorizedRequest, pb.BatchIsAuthorizedResponse
        ],
    ) -> pb.BatchIsAuthorizedResponse:
        try:
            decisions = await self._calls.batch_is_authorized_async(
                request, context.time_remaining()
            )
        except Exception as exc:
            await self._abort(context, BATCH_IS_AUTHORIZED, exc)
        return pb.BatchIsAuthorizedResponse(results=[convert.response(d) for d in decisions])

    async def PlanResources(
        self,
        request: pb.PlanResourcesRequest,
        context: grpc.aio.ServicerContext[pb.PlanResourcesRequest, pb.PlanResourcesResponse],
    ) -> pb.PlanResourcesResponse:
        try:
            plan = self._calls.plan_resources(request, context.time_remaining())
        except Exception as exc:
            await self._abort(context, PLAN_RESOURCES, exc)
        return convert.plan_response(plan)

    async def GetStatus(
        self,
        request: pb.GetStatusRequest,
        context: grpc.aio.ServicerContext[pb.GetStatusRequest, pb.GetStatusResponse],
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
            bundle_source=status.source or self._bundle_path,
            last_fetch_error=status.last_fetch_error,
            from_cache=status.from_cache,
        )
        if status.last_fetch_at is not None:
            response.last_fetch_at.CopyFrom(_timestamp(status.last_fetch_at))
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
        if self._protection is not None:
            await self._protection_status(response.protection, bundle)
        return response

    async def _protection_status(
        self, message: pb.ProtectionStatus, bundle: CompiledBundle | None
    ) -> None:
        """The protection state, mode and active blocks (Redis's, or this replica's)."""
        assert self._protection is not None
        found = await self._protection.status(bundle)
        message.state = str(found["state"])
        message.mode = str(found["mode"])
        message.fallbacks = int(found.get("fallbacks", 0))
        message.last_error = str(found.get("last_error", ""))
        for penalty in found["penalties"]:
            item = message.penalties.add(
                subject=penalty.subject,
                action=penalty.action,
                detector=penalty.detector,
                status=penalty.status,
            )
            item.until.CopyFrom(_timestamp(penalty.until))

    async def _abort(
        self, context: grpc.aio.ServicerContext[Any, Any], api: str, error: Exception
    ) -> NoReturn:
        """End a call without a decision (already recorded by `Calls`): an answered error with
        the status of its code, anything else INTERNAL with the details only in the log."""
        if isinstance(error, ANSWERED):
            await context.abort(grpc.StatusCode[error.grpc_status], str(error))
        error_id = engine.new_decision_id()
        log.error(  # the type and where, never the message: it may quote request data
            "call failed; answered INTERNAL",
            extra={
                "event": "internal_error",
                "api": api,
                "error_id": error_id,
                "error": type(error).__name__,
                "where": "".join(traceback.format_tb(error.__traceback__)[-3:]),
            },
        )
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error {error_id}; see the log")


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
