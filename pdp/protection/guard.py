"""Edge protection around one gateway answer: limits and blocks, then detectors record it.

The pipeline decides identity, route and policy first (pdp/gateway/check.py); the state then
takes one atomic step: active blocks and throttles, every matching token bucket, and, when the
request is admitted, the detectors record its outcome. A refused request is answered 429 (a
block: its configured status) and its policy decision is discarded: never answered, and not
recorded by the detectors, exactly as if limits had come before policy (the documented order).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Protocol

from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.gateway.result import CheckResult, GatewayRequest, GatewayResponse
from pdp.model import Decision
from pdp.protection.outcome import Fired, Outcome, Penalty, Refusal, State
from pdp.protection.plan import RATE_LIMIT, Step, plan

log = logging.getLogger("pdp.protection")

RATE_LIMITED, BLOCKED = "rate_limited", "blocked"  # the deny body's `error` word


class Events(Protocol):
    """Where protection reports: one JSON event per alert or block, and each 429 by route."""

    def protection_event(self, event: dict[str, Any]) -> None: ...

    def rate_limited(self, route: str | None) -> None: ...


class Protection:
    """The protection runtime: one state (in-process or Redis) that outlives bundle reloads."""

    def __init__(
        self,
        state: State,
        events: Events | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.events = events
        self.clock = clock

    async def guard(
        self, bundle: CompiledBundle | None, request: GatewayRequest, response: GatewayResponse
    ) -> GatewayResponse:
        """`response`, or the 429 (or block status) that replaces it."""
        config = bundle.protection if bundle is not None else None
        if config is None:
            return response
        gateway = bundle.gateway if bundle is not None else None
        keys = gateway.identity.api_keys if gateway is not None else None
        header = keys.header if keys is not None else None
        try:
            step = plan(config, response.result, request, header, self.clock())
            if step is None:
                return response
            outcome = await self.state.apply(step)
        except Exception as exc:  # the policy's answer stands: a deny stays a deny
            log.error(
                "protection failed; the policy decision answers",
                extra={"event": "protection_error", "error": f"{type(exc).__name__}: {exc}"},
            )
            return response
        result = response.result
        for fired in outcome.fired:
            self._emit(_fired_event(fired, result, step, outcome))
        refusal = outcome.refusal
        if refusal is None:
            return response
        if not step.enforce:  # mode: observe: say what would have happened, change nothing
            self._emit(_observed_event(refusal, result, step, outcome))
            return response
        if self.events is not None:
            self.events.rate_limited(result.route)
        return refused(response, refusal, bundle.revision if bundle is not None else "")

    def _emit(self, event: dict[str, Any]) -> None:
        if self.events is None:
            return
        try:
            self.events.protection_event(event)
        except Exception:
            log.exception("protection event not recorded", extra={"event": "listener_error"})

    async def status(self, bundle: CompiledBundle | None) -> dict[str, Any]:
        """What GetStatus reports: the state, the mode and the active blocks and throttles."""
        config = bundle.protection if bundle is not None else None
        penalties = await self.state.penalties(self.clock())
        return {
            **self.state.describe(),
            "mode": config.mode if config is not None else "off",
            "penalties": penalties,
        }

    async def close(self) -> None:
        await self.state.close()


def refused(response: GatewayResponse, refusal: Refusal, revision: str) -> GatewayResponse:
    """The answer for a refused request: 429 with Retry-After and the RateLimit fields of
    draft-ietf-httpapi-ratelimit-headers (or a block's own status), a JSON body."""
    blocked = refusal.kind == "blocked"
    error = BLOCKED if blocked else RATE_LIMITED
    retry = max(1, math.ceil(refusal.retry_after))
    if blocked:
        message = f"blocked by the {refusal.name} detector for {retry}s more"
    else:
        message = f"over the {refusal.name} limit ({refusal.kind}); retry in {retry}s"
    decision = Decision(
        allowed=False,
        determining_policies=(),
        erroring_policies=(),
        errors=(message,),
        decision_id=engine.new_decision_id(),
        bundle_revision=revision,
    )
    result: CheckResult = replace(
        response.result,
        allowed=False,
        http_status=refusal.status,
        error=error,
        reason=refusal.kind,
        message=message,
        decision=decision,
    )
    headers = [("content-type", "application/json")]
    if refusal.status == 429:
        headers.append(("retry-after", str(retry)))
    if refusal.limit:
        name = _quote(refusal.name)
        window = max(1, math.ceil(refusal.window))
        headers.append(("ratelimit-policy", f"{name};q={refusal.limit};w={window}"))
        headers.append(("ratelimit", f"{name};r=0;t={retry}"))
    body = f'{{"error": {_quote(error)}, "decision_id": {_quote(decision.decision_id)}}}'
    metadata = {
        **response.metadata,
        "decision": "deny",
        "decision_id": decision.decision_id,
        "determining_policies": [],
        "reason": refusal.kind,
    }
    return GatewayResponse(False, refusal.status, tuple(headers), (), body, metadata, result)


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _base(result: CheckResult, step: Step, outcome: Outcome) -> dict[str, Any]:
    return {
        "event": "protection",
        "time": _time(step.now),
        "mode": "enforce" if step.enforce else "observe",
        "principal": str(result.principal) if result.principal is not None else None,
        "route": result.route,
        "source_address": result.source_address or None,
        "request_id": result.request_id,
        "state": outcome.state,
    }


def _fired_event(fired: Fired, result: CheckResult, step: Step, outcome: Outcome) -> dict[str, Any]:
    samples = "sample_ids" if fired.what == "ids" else "sample_addresses"
    return {
        **_base(result, step, outcome),
        "detector": fired.detector,
        "action": fired.action,
        "subject": fired.subject,
        "counts": {fired.what: fired.count, "requests": fired.total, "denied": fired.denied},
        samples: list(fired.samples) if fired.what in ("ids", "addresses") else None,
        "until": _time(fired.until),
    }


def _observed_event(
    refusal: Refusal, result: CheckResult, step: Step, outcome: Outcome
) -> dict[str, Any]:
    detector = RATE_LIMIT if refusal.kind != "blocked" else refusal.name
    return {
        **_base(result, step, outcome),
        "detector": detector,
        "action": "alert",
        "would_be": refusal.kind,
        "limit": refusal.name,
        "until": _time(step.now + refusal.retry_after),
    }


def penalty_json(penalty: Penalty) -> dict[str, Any]:
    """One active block or throttle as `pdp status --protection` prints it."""
    return {
        "subject": penalty.subject,
        "action": penalty.action,
        "detector": penalty.detector,
        "until": _time(penalty.until),
        "status": penalty.status,
    }
