"""The bench's sweeps: workers, policy and entity counts (cold), and reloads under load."""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import grpc

from bench import (
    bundles,
    client,
    inproc,
    procs,
    servers,
)
from bench.context import GET_STATUS, IS_AUTHORIZED, Bench
from bench.measure import Contender, first_pass, frames, rounds, verify_bodies
from bench.mix import Call, entity_sweep_mix, policy_sweep_mix
from bench.report import Row
from pdp.v1 import authorizer_pb2 as pb

POLICY_COUNTS = (50, 1000, 10000)
# Sweeps and workers decide every request: the h2load bodies repeat, so with the decision
# cache on (the default) they would measure cache hits. Rows say cold or warm.
COLD = ["--decision-cache-size", "0"]
ENTITY_COUNTS = (100, 10000, 100000)


def start_sweep(
    bench: Bench,
    stack: contextlib.ExitStack,
    group: str,
    name: str,
    bundle: Path,
    calls: list[Call],
    extra: list[str] | None = None,
    note: str = "",
    bodies_calls: list[Call] | None = None,
) -> Contender | None:
    """Start one sweep server (alone, so its load time is its own) and warm it on the mix."""
    slug = re.sub(r"\W+", "-", f"pdp-{group}-{name}")
    server = servers.start_pdp(bundle, bench.logs, slug, extra, bench.settings.decision_log)
    stack.callback(server.stop)
    try:
        server.wait_ready(procs.grpc_health_probe(server.address), bench.settings.load_timeout)
    except procs.StartError as exc:
        server.stop()
        bench.rows.append(Row(group, name, note=f"n/a: {str(exc)[:200]}"))
        bench.log(f"{group} {name}: {exc}")
        return None
    payloads = [c.proto().SerializeToString() for c in calls]
    step = max(1, len(calls) // bench.settings.h2load_procs)
    picks = bodies_calls or calls[::step][: bench.settings.h2load_procs]
    bodies = frames([c.proto().SerializeToString() for c in picks])
    who = Contender(name, server, IS_AUTHORIZED, payloads, bodies)
    verify_bodies(who)
    cold = first_pass(server.address, payloads)
    parts = [f"ready in {server.ready_seconds:.1f} s", f"first pass {cold:,.0f} µs/req", note]
    return replace(who, note="; ".join(p for p in parts if p))


def _cold() -> list[str]:
    """`pdp serve` flags deciding every request (none on a tree without the decision cache)."""
    return COLD if servers.supports("--decision-cache-size") else []


def _sweep(bench: Bench, group: str, contenders: list[Contender | None]) -> None:
    floor = bench.shared.get("floor")
    ready = [c for c in contenders if c is not None]
    if ready:
        rows = rounds(bench, group, [floor, *ready] if floor else ready, floor is not None)
        bench.rows += rows[1:] if floor else rows


def section_workers(bench: Bench, bundle: Path, calls: list[Call]) -> None:
    if not servers.supports("--workers"):
        bench.skip("workers", "IsAuthorized cold --workers 2", "pdp serve has no --workers yet")
        return
    with contextlib.ExitStack() as stack:
        found = [
            start_sweep(
                bench,
                stack,
                "workers",
                f"IsAuthorized cold --workers {n}",
                bundle,
                calls,
                ["--workers", str(n), *_cold()],
            )
            for n in (1, 2)
        ]
        _sweep(bench, "workers", found)
    servers.cleanup_decision_logs(bench.logs)


def section_policies(bench: Bench) -> None:
    with contextlib.ExitStack() as stack:
        found = []
        for n in POLICY_COUNTS:
            bundle = bundles.write_policy_sweep_bundle(bench.bundles / f"policies-{n}", n, 300)
            types, static, links = bundles.sweep_shape(n)
            calls = policy_sweep_mix(n)
            floor = inproc.measure(bundle, calls, min(1.0, bench.settings.round_duration))
            note = (
                f"{static} policies over {types} resource types + {links} template links; "
                f"cedarpy in-process p50 {floor.p50_us:,.0f} µs"
            )
            name = f"{n:,} policies cold"
            found.append(start_sweep(bench, stack, "policies", name, bundle, calls, _cold(), note))
        _sweep(bench, "policies", found)
    servers.cleanup_decision_logs(bench.logs)


def _too_slow(
    previous: tuple[int, float] | None, start_cost: float | None, n: int, timeout: float
) -> str:
    """Why loading `n` entities would overrun `timeout`, judging by the last point ("" if not).

    Loading is at least linear in the entity count beyond the process's own start cost.
    """
    if previous is None or start_cost is None:
        return ""
    guess = start_cost + (previous[1] - start_cost) * n / previous[0]
    if guess <= timeout:
        return ""
    return (
        f"{previous[0]:,} entities took {previous[1]:.1f} s to load, so {n:,} would take "
        f"~{guess:.0f} s, over the {timeout:.0f} s allowed"
    )


def section_entities(bench: Bench) -> None:
    calls = entity_sweep_mix()
    note = "requests carry their principal and resource entities"
    with contextlib.ExitStack() as stack:
        found: list[Contender | None] = []
        skipped: list[Row] = []
        start_cost: float | None = None  # seconds to ready with the smallest bundle
        previous: tuple[int, float] | None = None
        for n in ENTITY_COUNTS:
            name = f"{n:,} bundle entities cold"
            why = _too_slow(previous, start_cost, n, bench.settings.load_timeout)
            if why:
                skipped.append(Row("entities", name, note=f"n/a: {why}"))
                continue
            bundle = bundles.write_orders_bundle(bench.bundles / f"entities-{n}", entity_count=n)
            who = start_sweep(bench, stack, "entities", name, bundle, calls, _cold(), note)
            found.append(who)
            shutil.rmtree(bundle, ignore_errors=True)
            ready = who.server.ready_seconds if who else bench.settings.load_timeout
            start_cost = ready if start_cost is None else start_cost
            previous = (n, ready)
        _sweep(bench, "entities", found)
    bench.rows += skipped
    servers.cleanup_decision_logs(bench.logs)


def section_reload(bench: Bench, example: Path, calls: list[Call]) -> None:
    name = "file write -> new revision serving"
    if not servers.supports("--watch"):
        bench.skip("reload", name, "pdp serve does not reload on change")
        return
    bundle = bundles.copy_bundle(example, bench.bundles / "reload")
    target = sorted(bundle.rglob("*.cedar"))[0]
    server = servers.start_pdp(bundle, bench.logs, "pdp-reload", None, bench.settings.decision_log)
    iterations = 3 if bench.settings.quick else 6
    latencies: list[float] = []
    during: dict[str, Any] = {}
    with procs.running(server, procs.grpc_health_probe(server.address), 60):
        payloads = [c.proto().SerializeToString() for c in calls]

        def load() -> None:
            window = iterations * 0.8 + 1
            during["lat"] = client.measure(server.address, IS_AUTHORIZED, payloads, 8, window, 0.2)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        time.sleep(0.5)
        with grpc.insecure_channel(server.address) as channel:
            status = channel.unary_unary(
                GET_STATUS,
                request_serializer=pb.GetStatusRequest.SerializeToString,
                response_deserializer=pb.GetStatusResponse.FromString,
            )
            for i in range(iterations):
                before = status(pb.GetStatusRequest(), timeout=5).bundle_revision
                started = time.perf_counter()
                with open(target, "a") as file:
                    file.write(f"\n// bench reload {i} at {time.time()}\n")
                while time.perf_counter() - started < 10:
                    if status(pb.GetStatusRequest(), timeout=5).bundle_revision != before:
                        latencies.append((time.perf_counter() - started) * 1e3)
                        break
                    time.sleep(0.002)
                time.sleep(0.3)
        thread.join(timeout=30)
    servers.cleanup_decision_logs(bench.logs)
    row = Row("reload", name, "-", raw={"reload_ms": latencies})
    if latencies:
        latencies.sort()
        row.note = (
            f"reload latency p50 {latencies[len(latencies) // 2]:,.0f} ms, max "
            f"{latencies[-1]:,.0f} ms over {len(latencies)}/{iterations} writes (GetStatus polled "
            "every 2 ms; includes the watcher's debounce)"
        )
    else:
        row.note = "n/a: no new revision within 10 s of a policy file write"
    lat = during.get("lat")
    if lat is not None:
        row.p50_us, row.p99_us, row.rps, row.inflight = lat.p50_us, lat.p99_us, lat.rps, "8"
        row.note += f"; p50/p99/dec/s: IsAuthorized during the reloads, {lat.errors} RPC errors"
        row.raw["during"] = asdict(lat)
    bench.rows.append(row)
