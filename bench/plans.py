"""Query plan latency: PlanResources on the example bundle vs one IsAuthorized, in-process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.client import percentile
from pdp import engine
from pdp.bundle import load_bundle
from pdp.model import AuthzRequest, EntityRef
from pdp.plan import PlanRequest, plan_resources

ROLES = ('User::"42"', 'User::"support-sam"', 'User::"admin-ada"')  # customer, support, admin


@dataclass(frozen=True, slots=True)
class PlanResult:
    """Per-call cost of the engine functions behind both RPCs (no gRPC, one thread)."""

    plan_p50_us: float
    plan_p99_us: float
    decide_p50_us: float
    plans: int
    decisions: int


def measure(bundle_dir: Path, duration: float) -> PlanResult:
    """`plan_resources` (listOrders over Order, each role in turn) and `engine.decide`
    (readOrder on one order), each for `duration` seconds."""
    bundle = load_bundle(bundle_dir)
    action = EntityRef("Action", "listOrders")
    questions = [PlanRequest(EntityRef.parse(p), action, "Order") for p in ROLES]
    requests = [
        AuthzRequest(
            EntityRef.parse(p), EntityRef("Action", "readOrder"), EntityRef("Order", "o-1001")
        )
        for p in ROLES
    ]
    plans = _timed(lambda n: plan_resources(bundle, questions[n % len(questions)]), duration)
    decisions = _timed(lambda n: engine.decide(bundle, requests[n % len(requests)]), duration)
    return PlanResult(
        plan_p50_us=percentile(plans, 0.5) / 1e3,
        plan_p99_us=percentile(plans, 0.99) / 1e3,
        decide_p50_us=percentile(decisions, 0.5) / 1e3,
        plans=len(plans),
        decisions=len(decisions),
    )


def _timed(call: Callable[[int], object], duration: float) -> list[int]:
    latencies: list[int] = []
    end = time.perf_counter() + duration
    n = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter_ns()
        call(n)
        latencies.append(time.perf_counter_ns() - t0)
        n += 1
    latencies.sort()
    return latencies
