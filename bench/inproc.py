"""The engine floor: cedarpy `is_authorized` in-process, with the bundle's pre-parsed handles."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from bench.client import percentile
from bench.mix import Call
from pdp.bundle import load_bundle


@dataclass(frozen=True, slots=True)
class InprocResult:
    """Per-decision cost of cedarpy alone (one thread: wall time is CPU time)."""

    count: int
    p50_us: float
    p99_us: float
    rps: float
    errors: int
    allowed: int


def measure(bundle_dir: Path, calls: Sequence[Call], duration: float) -> InprocResult:
    """Decide the mix round-robin for `duration` s, as a direct cedarpy caller would.

    Handles (policy set, schema, bundle entities) come from pdp's own loader, so this is
    the same bundle; request entities are merged with `with_added_json_str`, request
    context is passed as a dict: the plain public-API way.
    """
    bundle = load_bundle(bundle_dir)
    prepared = [(c.cedar(), c.entities_json()) for c in calls]
    latencies: list[int] = []
    errors = allowed = 0
    end = time.perf_counter() + duration
    n = 0
    while time.perf_counter() < end:
        request, entities_json = prepared[n % len(prepared)]
        n += 1
        t0 = time.perf_counter_ns()
        entities = (
            bundle.entities.with_added_json_str(entities_json, bundle.schema)
            if entities_json
            else bundle.entities
        )
        result = cedarpy.is_authorized(request, bundle.policy_set, entities, bundle.schema)
        latencies.append(time.perf_counter_ns() - t0)
        if result.decision is cedarpy.Decision.NoDecision:
            errors += 1
        elif result.decision is cedarpy.Decision.Allow:
            allowed += 1
    latencies.sort()
    total = sum(latencies) / 1e9
    return InprocResult(
        count=len(latencies),
        p50_us=percentile(latencies, 0.5) / 1e3,
        p99_us=percentile(latencies, 0.99) / 1e3,
        rps=len(latencies) / total if total else 0.0,
        errors=errors,
        allowed=allowed,
    )
