"""The pdp.v1.Authorizer servicer: convert, call the engine, map errors to status codes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from datetime import UTC, datetime
from typing import Any

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
    LazyRequests,
    PlanFields,
    Recorder,
)
from pdp.errors import DeadlineExceeded, NoBundleError, PdpError, RequestError
from pdp.live.store import BundleStore
from pdp.model import AuthzRequest, Decision, EntityRef
from pdp.plan import Plan, PlanKind, PlanRequest, plan_resources
from pdp.protection import Protection
from pdp.server import convert
from pdp.server.limits import Limits
from pdp.server.limits.deadline import Deadline, deadline
from pdp.server.limits.request import check_batch, check_plan_request, check_request
from pdp.server.limits.walk import Parents
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc

NO_BUNDLE = "no valid policy bundle is active; see GetStatus for the last load error"
CHUNK_WEIGHT = 100  # batch items decided between two deadline checks (own entities: 10 each)
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
        self._cache = cache if cache is not None else DecisionCache(0)
        self._store = store
        self._limits = limits
        self._bundle_path = bundle_path
        self._started_at = started_at or datetime.now(UTC).timestamp()

    async def IsAuthorized(
        self,
        request: pb.IsAuthorizedRequest,
        context: grpc.aio.ServicerContext[pb.IsAuthorizedRequest, pb.IsAuthorizedResponse],
    ) -> pb.IsAuthorizedResponse:
        started = time.perf_counter()
        try:
            bundle = self._bundle()
            deadline(context.time_remaining(), self._limits)  # no work for an expired call
            check_request(request, self._limits)
            authz = convert.authz_request(request)
            decision = self._cache.decide(bundle, authz)
        except ANSWERED as exc:
            await self._refuse(context, IS_AUTHORIZED, started, convert.named_as_sent(exc, request))
        except Exception as exc:  # fail closed: a status without a decision, never an allow
            await self._failed(context, IS_AUTHORIZED, started, exc)
        self._recorder.decision(IS_AUTHORIZED, started, bundle, decision, authz)
        return convert.response(decision)

    async def BatchIsAuthorized(
        self,
        request: pb.BatchIsAuthorizedRequest,
        context: grpc.aio.ServicerContext[
            pb.BatchIsAuthorizedRequest, pb.BatchIsAuthorizedResponse
        ],
    ) -> pb.BatchIsAuthorizedResponse:
        started = time.perf_counter()
        try:
            bundle = self._bundle()
            until = deadline(context.time_remaining(), self._limits)
            links = check_batch(request, self._limits)
            shared = convert.entities_json(request.entities, request.entities_json, "entities")
            decisions = await _decide_items(
                bundle, request, shared, self._limits, links, until, self._cache
            )
        except ANSWERED as exc:
            named = convert.named_as_sent(exc, request)
            await self._refuse(context, BATCH_IS_AUTHORIZED, started, named)
        except Exception as exc:  # fail closed: a status without a decision, never an allow
            await self._failed(context, BATCH_IS_AUTHORIZED, started, exc)
        items = LazyRequests(request.requests, _logged_request)
        self._recorder.batch(BATCH_IS_AUTHORIZED, started, bundle, decisions, items, shared)
        return pb.BatchIsAuthorizedResponse(results=[convert.response(d) for d in decisions])

    async def PlanResources(
        self,
        request: pb.PlanResourcesRequest,
        context: grpc.aio.ServicerContext[pb.PlanResourcesRequest, pb.PlanResourcesResponse],
    ) -> pb.PlanResourcesResponse:
        started = time.perf_counter()
        try:
            bundle = self._bundle()
            deadline(context.time_remaining(), self._limits)  # no work for an expired call
            check_plan_request(request, self._limits)
            question = convert.plan_request(request)
            plan = plan_resources(bundle, question)
        except ANSWERED as exc:
            await self._refuse(
                context, PLAN_RESOURCES, started, convert.named_as_sent(exc, request)
            )
        except Exception as exc:  # fail closed: a status without a plan, never an allow
            await self._failed(context, PLAN_RESOURCES, started, exc)
        decision, logged, fields = _plan_log(plan, question)
        self._recorder.plan(PLAN_RESOURCES, started, bundle, decision, logged, fields)
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

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        api: str,
        started: float,
        error: PdpError,
    ) -> None:
        """End a call without a decision, with the status of the error's code."""
        code = grpc.StatusCode[error.grpc_status]
        self._recorder.failed(api, started, code.name)
        await context.abort(code, str(error))

    async def _failed(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        api: str,
        started: float,
        error: Exception,
    ) -> None:
        """End a call that failed unexpectedly: INTERNAL, the details only in the log."""
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
        self._recorder.failed(api, started, grpc.StatusCode.INTERNAL.name)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error {error_id}; see the log")

    def _bundle(self) -> CompiledBundle:
        """The active bundle, read once per call; NoBundleError when there is none."""
        bundle = self._store.current
        if bundle is None:
            raise NoBundleError(NO_BUNDLE)
        return bundle


async def _decide_items(
    bundle: CompiledBundle,
    request: pb.BatchIsAuthorizedRequest,
    shared: str | None,
    limits: Limits,
    links: Parents | None,
    until: Deadline,
    cache: DecisionCache,
) -> list[Decision]:
    """Check and convert each item (a malformed one becomes a deny), then decide the rest in
    chunks, checking the deadline before each and letting other calls run in between."""
    converted = []
    positions = []
    malformed: dict[int, Decision] = {}
    for index, item in enumerate(request.requests):
        prefix = f"requests[{index}]."
        try:
            check_request(item, limits, prefix, links)
            converted.append(convert.authz_request(item, prefix=prefix))
            positions.append(index)
        except RequestError as exc:
            malformed[index] = engine.malformed_decision(bundle, exc)
    decisions: list[Decision] = []
    for start, end in _chunks(converted):
        if start:
            await asyncio.sleep(0)
        until.check(len(decisions), len(converted))
        chunk = converted[start:end]
        decisions += cache.decide_batch(bundle, chunk, shared, positions[start:end])
    decided = iter(decisions)
    return [malformed[i] if i in malformed else next(decided) for i in range(len(request.requests))]


def _chunks(items: list[AuthzRequest]) -> list[tuple[int, int]]:
    """Index ranges of about CHUNK_WEIGHT work each; an item with its own entities weighs 10."""
    ranges = []
    start, weight = 0, 0
    for index, item in enumerate(items):
        weight += 10 if item.entities_json else 1
        if weight >= CHUNK_WEIGHT:
            ranges.append((start, index + 1))
            start, weight = index + 1, 0
    if start < len(items):
        ranges.append((start, len(items)))
    return ranges


def _logged_request(item: pb.IsAuthorizedRequest) -> AuthzRequest | None:
    """A batch item as the decision log shows it (None when malformed); runs off the call."""
    try:
        return convert.authz_request(item)
    except RequestError:
        return None


def _plan_log(plan: Plan, question: PlanRequest) -> tuple[Decision, AuthzRequest, PlanFields]:
    """A plan as the decision log records it (the resource is its type, not one entity)."""
    decision = Decision(
        allowed=plan.kind is PlanKind.ALWAYS_ALLOWED,
        determining_policies=plan.policies,
        erroring_policies=(),
        errors=tuple(
            f"unsupported in {p.policy}: {p.expression} ({p.reason})" for p in plan.unsupported
        ),
        decision_id=plan.decision_id,
        bundle_revision=plan.bundle_revision,
    )
    logged = AuthzRequest(
        principal=question.principal,
        action=question.action,
        resource=EntityRef(question.resource_type, ""),
        context=question.context,
        context_json=question.context_json,
        entities_json=question.entities_json,
    )
    fields = PlanFields(plan.kind.value, plan.resource_type, len(plan.unsupported))
    return decision, logged, fields


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
