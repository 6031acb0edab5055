"""The pdp.v1 calls without a transport: limits, conversion, decision, decision log, metrics.

The HTTP edge and embedded mode run every call through here, on one bundle snapshot read
once per call; the gRPC servicer (`server/authorizer.py`) runs the same steps around its own
status codes. Failures raise `PdpError`s (`RequestError`, `LimitExceeded`,
`DeadlineExceeded`, `NoBundleError`); `pdp.errors.STATUS` says what each code is on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.decisioncache import MESSAGE_MAX_BYTES, DecisionCache, message_scope
from pdp.decisionlog import (
    BATCH_IS_AUTHORIZED,
    IS_AUTHORIZED,
    PLAN_RESOURCES,
    LazyRequests,
    PlanFields,
    Recorder,
)
from pdp.errors import STATUS, ErrorCode, NoBundleError, PdpError, RequestError
from pdp.model import AuthzRequest, Decision, EntityRef
from pdp.plan import Plan, PlanKind, PlanRequest, plan_resources
from pdp.server import convert
from pdp.server.limits import Limits
from pdp.server.limits.deadline import deadline, not_expired
from pdp.server.limits.request import check_batch, check_plan_request, check_request
from pdp.v1 import authorizer_pb2 as pb

# PdpError.code -> (gRPC status name, HTTP status). The one mapping of this edge; the
# restructure (issue 17) brings a central table in pdp/errors.py that replaces it.
# The codes a call answers with; any other (a configuration code) is answered as internal.
ANSWERED = frozenset(
    {
        ErrorCode.INVALID_ARGUMENT,
        ErrorCode.RESOURCE_EXHAUSTED,
        ErrorCode.DEADLINE_EXCEEDED,
        ErrorCode.UNAVAILABLE,
        ErrorCode.INTERNAL,
    }
)

__all__ = ["CHUNK_WEIGHT", "STATUS", "Batch", "Calls", "code_of"]


def code_of(error: BaseException) -> ErrorCode:
    """The `STATUS` key of an error: its PdpError code when a call answers with it, else
    `internal`."""
    code = error.code if isinstance(error, PdpError) else ErrorCode.INTERNAL
    return code if code in ANSWERED else ErrorCode.INTERNAL


class BundleHolder(Protocol):
    """What `Calls` reads a bundle from: a `BundleStore`."""

    @property
    def current(self) -> CompiledBundle | None: ...


NO_BUNDLE = "no valid policy bundle is active; see GetStatus for the last load error"
CHUNK_WEIGHT = 100  # batch items decided between two deadline checks (own entities: 10 each)


@dataclass(frozen=True, slots=True)
class Calls:
    """The three pdp.v1 calls over a store's current bundle, with limits and a recorder.

    `store` is anything with a `current` bundle (a `BundleStore`). Every method records one
    call (a decision, a batch, a plan, or a failure with its status name) on `recorder`.
    `cache` answers decisions made before on the same bundle (`pdp/decisioncache.py`; it
    follows the store's bundle through its own listener); the default decides every time.
    """

    store: BundleHolder
    limits: Limits
    recorder: Recorder
    cache: DecisionCache = field(default_factory=lambda: DecisionCache(0))
    # what a remembered IsAuthorized message is scoped by besides the bundle (its limits)
    _scope: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scope = message_scope(pb.IsAuthorizedRequest.DESCRIPTOR.full_name, self.limits)
        object.__setattr__(self, "_scope", scope)

    def bundle(self, api: str, started: float) -> CompiledBundle:
        bundle = self.store.current
        if bundle is None:
            self.recorder.failed(api, started, STATUS[ErrorCode.UNAVAILABLE][0])
            raise NoBundleError(NO_BUNDLE)
        return bundle

    def is_authorized(
        self,
        message: pb.IsAuthorizedRequest,
        remaining: float | None = None,
        api: str = IS_AUTHORIZED,
    ) -> Decision:
        """One decision; `remaining` is the caller's time budget in seconds (None: none).

        A message answered before on this bundle (the same serialization: the same request,
        which passed the same limits) is answered from the cache without being checked or
        converted again; its deadline is still checked first, as for any call."""
        started = time.perf_counter()
        bundle = self.bundle(api, started)
        try:
            not_expired(remaining)
            found, key = self._recall(bundle, message)
            if found is None:
                check_request(message, self.limits)
                authz = convert.authz_request(message)
                decision = self.cache.decide(bundle, authz, key)
            else:
                authz, decision = found
        except BaseException as exc:
            raise self.failed(api, started, exc, message) from None
        self.recorder.decision(api, started, bundle, decision, authz)
        return decision

    def _recall(
        self, bundle: CompiledBundle, message: pb.IsAuthorizedRequest
    ) -> tuple[tuple[AuthzRequest, Decision] | None, bytes | None]:
        """What the cache remembers of this message on `bundle`, and its key (None, None when
        the cache is off)."""
        cache = self.cache
        if not cache.size or message.ByteSize() > MESSAGE_MAX_BYTES:  # not serialized for it
            return None, None
        key = cache.message_key(bundle, self._scope, message.SerializeToString(deterministic=True))
        return (cache.recall(bundle, key) if key is not None else None), key

    def batch_is_authorized(
        self,
        message: pb.BatchIsAuthorizedRequest,
        remaining: float | None = None,
        api: str = BATCH_IS_AUTHORIZED,
        how: Batch | None = None,
    ) -> list[Decision]:
        """A batch decided in chunks on this thread; results in request order."""
        steps = _BatchSteps(self, message, remaining, api, how or Batch())
        for _ in steps:
            pass
        return steps.decisions

    async def batch_is_authorized_async(
        self,
        message: pb.BatchIsAuthorizedRequest,
        remaining: float | None = None,
        api: str = BATCH_IS_AUTHORIZED,
        how: Batch | None = None,
    ) -> list[Decision]:
        """As `batch_is_authorized`, letting other tasks of the loop run between chunks."""
        steps = _BatchSteps(self, message, remaining, api, how or Batch())
        for _ in steps:
            await asyncio.sleep(0)
        return steps.decisions

    def plan_resources(
        self,
        message: pb.PlanResourcesRequest,
        remaining: float | None = None,
        api: str = PLAN_RESOURCES,
    ) -> Plan:
        """A query plan, logged as a plan (README, "Query plans")."""
        started = time.perf_counter()
        bundle = self.bundle(api, started)
        try:
            deadline(remaining, self.limits)
            check_plan_request(message, self.limits)
            question = convert.plan_request(message)
            plan = plan_resources(bundle, question)
        except BaseException as exc:
            raise self.failed(api, started, exc, message) from None
        decision, logged, fields = _plan_log(plan, question)
        self.recorder.plan(api, started, bundle, decision, logged, fields)
        return plan

    def failed(
        self, api: str, started: float, error: BaseException, message: object
    ) -> BaseException:
        """Record a call that ended without a decision; the error to raise (a RequestError
        naming `entities_json` when that is what `message` set)."""
        if isinstance(error, RequestError):
            error = convert.named_as_sent(error, message)
        if not isinstance(error, KeyboardInterrupt | SystemExit):
            self.recorder.failed(api, started, STATUS[code_of(error)][0])
        return error


@dataclass(frozen=True, slots=True)
class Batch:
    """How a batch is decided. `refused`: items already known to be malformed (by position;
    their messages are placeholders), answered as denies naming the problem. `stop_on`:
    None decides every item; False stops after the first deny (a malformed item counts),
    True after the first allow; the answer then ends with that item, and items after it
    are never decided (nor logged)."""

    refused: Mapping[int, RequestError] = field(default_factory=dict)
    stop_on: bool | None = None


class _BatchSteps:
    """A batch as a generator of chunks: checked and converted first (a malformed item is a
    deny naming its problem), then decided chunk by chunk with the deadline checked before
    each; `decisions` holds the results once it is exhausted."""

    def __init__(
        self,
        calls: Calls,
        message: pb.BatchIsAuthorizedRequest,
        remaining: float | None,
        api: str,
        how: Batch,
    ) -> None:
        self.decisions: list[Decision] = []
        self._steps = self._run(calls, message, remaining, api, how, time.perf_counter())

    def __iter__(self) -> Iterator[None]:
        return self._steps

    def _run(
        self,
        calls: Calls,
        message: pb.BatchIsAuthorizedRequest,
        remaining: float | None,
        api: str,
        how: Batch,
        started: float,
    ) -> Iterator[None]:
        bundle = calls.bundle(api, started)
        limits = calls.limits
        try:
            until = deadline(remaining, limits)
            links = check_batch(message, limits)
            shared = convert.entities_json(message.entities, message.entities_json, "entities")
            converted: list[AuthzRequest] = []
            positions: list[int] = []
            malformed: dict[int, Decision] = {}
            for index, item in enumerate(message.requests):
                prefix = f"requests[{index}]."
                try:
                    if index in how.refused:
                        raise how.refused[index]
                    check_request(item, limits, prefix, links)
                    converted.append(convert.authz_request(item, prefix=prefix))
                    positions.append(index)
                except RequestError as exc:
                    malformed[index] = engine.malformed_decision(bundle, exc)
            if how.stop_on is None:
                decided: list[Decision] = []
                for start, end in _chunks(converted):
                    if start:
                        yield
                    until.check(len(decided), len(converted))
                    chunk = converted[start:end]
                    decided += calls.cache.decide_batch(bundle, chunk, shared, positions[start:end])
                results = iter(decided)
                count = len(message.requests)
                decisions = [malformed.get(i) or next(results) for i in range(count)]
            else:
                decisions = []
                pending = iter(zip(positions, converted, strict=True))
                for index in range(len(message.requests)):
                    if index in malformed:
                        decision = malformed[index]
                    else:
                        if decisions:
                            yield
                        until.check(len(decisions), len(message.requests))
                        _, request = next(pending)
                        decision = calls.cache.decide_batch(bundle, [request], shared, [index])[0]
                    decisions.append(decision)
                    if decision.allowed is how.stop_on:
                        break
        except BaseException as exc:
            raise calls.failed(api, started, exc, message) from None
        self.decisions = decisions
        items = LazyRequests(message.requests[: len(decisions)], _logged_request)
        calls.recorder.batch(api, started, bundle, decisions, items, shared)


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
