"""`make bench`: floors, pdp serve, the Cerbos peer and the sweeps in one run; one table.

Environment: BENCH_QUICK=1 (short points, for development), BENCH_PEERS=1 (Cerbos too),
BENCH_DURATION=S (seconds per point), BENCH_ONLY=floor,pdp,peer,workers,policies,entities,reload,
BENCH_DECISION_LOG=0 (pdp serve without its decision log; default: to a file).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench import bundles, cerbos, check, client, h2load, inproc, procs, report, servers
from bench.mix import Call, distinct_pairs, entity_sweep_mix, orders_mix, policy_sweep_mix
from bench.report import Row, Target
from pdp.v1 import authorizer_pb2 as pb

IS_AUTHORIZED = "/pdp.v1.Authorizer/IsAuthorized"
BATCH = "/pdp.v1.Authorizer/BatchIsAuthorized"
GET_STATUS = "/pdp.v1.Authorizer/GetStatus"
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
INFLIGHTS = (1, 8, 32)
BATCH_SIZE = 10
POLICY_COUNTS = (50, 1000, 10000)
ENTITY_COUNTS = (100, 10000, 100000)
GROUPS = ("floor", "pdp", "peer", "workers", "policies", "entities", "reload")
SECTIONS = ("floor", "pdp", "peer", "workers", "policies", "entities", "reload")


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and what to measure."""

    quick: bool
    peers: bool
    duration: float  # seconds per measured point, main rows
    sweep_duration: float  # seconds per measured point, sweeps
    warmup: float
    budget: float  # seconds for the whole run; later sections are skipped past it
    load_timeout: float  # seconds a sweep server may take to load its bundle
    decision_log: bool
    h2load_procs: int
    only: tuple[str, ...]

    @classmethod
    def from_env(cls, argv: Sequence[str]) -> Settings:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        peers = "--peers" in argv or os.environ.get("BENCH_PEERS", "") not in ("", "0")
        duration = float(os.environ.get("BENCH_DURATION", "1" if quick else "3"))
        only = tuple(s for s in os.environ.get("BENCH_ONLY", "").split(",") if s) or SECTIONS
        return cls(
            quick=quick,
            peers=peers,
            duration=duration,
            sweep_duration=duration if quick else max(1.0, duration * 2 / 3),
            warmup=0.2 if quick else 0.5,
            budget=240.0 if quick else 330.0,
            load_timeout=20.0 if quick else 60.0,
            decision_log=os.environ.get("BENCH_DECISION_LOG", "1") not in ("0", "off"),
            h2load_procs=8,
            only=only,
        )


class Bench:
    """One run: settings, scratch directory, rows measured so far, the clock."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.bundles = work / "bundles"  # bundle dirs apart from logs: the watcher sees the parent
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.started = time.monotonic()
        self.h2load = h2load.available()
        self.floor: procs.Server | None = None  # the empty server, kept up for local floors
        self.floor_load: tuple[list[bytes], list[bytes]] = ([], [])

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def remaining(self) -> float:
        return self.settings.budget - (time.monotonic() - self.started)

    def wants(self, section: str) -> bool:
        return section in self.settings.only

    def skip(self, group: str, name: str, why: str) -> None:
        self.log(f"skip {group} {name}: {why}")
        self.rows.append(Row(group, name, note=f"n/a: {why}"))


# --- measuring one server ---------------------------------------------------------------


def measure_points(
    bench: Bench,
    server: procs.Server,
    group: str,
    name: str,
    method: str,
    payloads: Sequence[bytes],
    bodies: Sequence[bytes],
    inflights: Sequence[int] = INFLIGHTS,
    per_call: int = 1,
    duration: float | None = None,
    h2load_at: Sequence[int] = (8, 32),
    python_at: Sequence[int] | None = None,
) -> list[Row]:
    """p50/p99 from the Python client; decisions/s and CPU from h2load where it runs."""
    duration = duration or bench.settings.duration
    python_at = inflights if python_at is None else python_at
    rows = []
    client.measure(server.address, method, payloads, 8, bench.settings.warmup, 0.0)  # warm-up
    for inflight in inflights:
        row = Row(group, name, str(inflight))
        try:
            _measure_point(
                bench,
                server,
                row,
                method,
                payloads,
                bodies,
                inflight,
                per_call,
                duration,
                inflight in python_at,
                inflight in h2load_at,
            )
        except Exception as exc:  # one point failing must not lose the others
            row.note = f"error: {type(exc).__name__}: {str(exc)[:200]}"
        bench.log(
            f"{group} {name} @{inflight}: p50 {_fmt(row.p50_us)} µs, {_fmt(row.rps)} dec/s, "
            f"CPU {_fmt(row.cpu_us)} µs/dec {row.note}"
        )
        rows.append(row)
    if per_call > 1:
        rows[0].note = (rows[0].note + "; " if rows[0].note else "") + (
            f"p50/p99 per call of {per_call}; dec/s and CPU per decision"
        )
    return rows


def _measure_point(
    bench: Bench,
    server: procs.Server,
    row: Row,
    method: str,
    payloads: Sequence[bytes],
    bodies: Sequence[bytes],
    inflight: int,
    per_call: int,
    duration: float,
    python: bool,
    saturate: bool,
) -> None:
    if python:
        lat = client.measure(
            server.address, method, payloads, inflight, duration, bench.settings.warmup, server.cpu
        )
        row.p50_us, row.p99_us = lat.p50_us, lat.p99_us
        row.rps = lat.rps * per_call
        row.cpu_us = lat.cpu_us_per_call / per_call if lat.cpu_us_per_call else None
        row.raw["python"] = asdict(lat)
        if lat.errors:
            row.note = f"{lat.errors} RPC errors, e.g. {lat.first_error[:120]}"
    if saturate and bench.h2load and bodies:
        result = h2load.run(server.port, method, bodies, inflight, duration, server.cpu)
        row.rps = result.rps * per_call
        row.cpu_us = result.cpu_us_per_request / per_call if result.cpu_us_per_request else None
        row.raw["h2load"] = asdict(result)
        if not result.ok:
            row.note = (
                f"h2load: {result.failed} failed, {result.errored} errored, "
                f"{result.broken}/{result.processes} unreadable {result.problem[:120]}"
            )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def verify_bodies(port: int, address: str, method: str, bodies: Sequence[bytes]) -> str:
    """Each h2load body answered OK (Python client, and grpc-status in trailers via nghttp)."""
    answers = client.call_each(address, method, [b[5:] for b in bodies])
    failed = [a for a in answers if isinstance(a, str)]
    if failed:
        raise RuntimeError(f"an h2load body is not answered OK: {failed[0]}")
    trailers = [h2load.grpc_status_in_trailers(port, method, b) for b in bodies]
    if any(t not in (None, "0") for t in trailers):
        raise RuntimeError(f"an h2load body gets grpc-status {trailers} in trailers")
    seen = "grpc-status 0 in trailers" if all(t == "0" for t in trailers) else "trailers not read"
    return f"{len(bodies)} h2load bodies: OK via Python client, {seen}"


def pick_bodies(calls: Sequence[Call], n: int) -> list[Call]:
    """n calls for h2load: half allowed, half denied, most carry entities, all Cerbos-mappable."""
    candidates = [c for c in calls if cerbos.mappable(c)]
    chosen: list[Call] = []
    for allowed in (True, False):
        side = [c for c in candidates if c.expect is allowed]
        carried = [c for c in side if c.entities]
        bare = [c for c in side if not c.entities]
        want = n // 2
        chosen += bare[:1] + carried[: want - min(1, len(bare))]
    for c in candidates:  # top up if a side was short
        if len(chosen) >= n:
            break
        if c not in chosen:
            chosen.append(c)
    return chosen[:n]


def frames(payloads: Sequence[bytes]) -> list[bytes]:
    return [h2load.grpc_frame(p) for p in payloads]


# --- sections ---------------------------------------------------------------------------


def main_bundle(bench: Bench) -> tuple[Path, check.Signer | None, str]:
    """The example bundle (a copy whose JWKS we control), else our own orders bundle."""
    example = servers.REPO / "policies"
    target = bench.bundles / "orders"
    if example.is_dir():
        try:
            from pdp.bundle import load_bundle

            load_bundle(example)
            why_not = check.available(example)
            if why_not:
                bundles.copy_bundle(example, target)
                return target, None, f"example bundle policies/ (Check: {why_not})"
            return target, check.prepare_bundle(example, target), "example bundle policies/"
        except Exception as exc:
            bench.log(f"example bundle unusable ({exc}); using bench's own orders bundle")
    bundles.write_orders_bundle(target, entity_count=100)
    return target, None, "bench's own orders bundle (policies/ missing or not loading)"


def section_floor_inproc(bench: Bench, bundle: Path, calls: list[Call]) -> None:
    result = inproc.measure(bundle, calls, bench.settings.duration)
    note = f"{result.count} decisions, {result.allowed} allowed, {result.errors} errors; 1 thread"
    cpu = 1e6 / result.rps if result.rps else None
    row = Row(
        "floor",
        "cedarpy in-process (same bundle)",
        "-",
        result.p50_us,
        result.p99_us,
        result.rps,
        cpu,
        note=note,
        raw={"inproc": asdict(result)},
    )
    bench.rows.append(row)
    bench.log(f"floor cedarpy in-process: p50 {result.p50_us:.1f} µs, {result.rps:,.0f} dec/s")


def section_floor_empty(bench: Bench, payloads: list[bytes], bodies: list[bytes]) -> None:
    server = servers.start_empty(bench.logs)
    server.wait_ready(_rpc_probe(server.address), 30)
    bench.floor, bench.floor_load = server, (payloads, bodies)  # stopped at the end of the run
    verify_bodies(server.port, server.address, IS_AUTHORIZED, bodies)
    bench.rows += measure_points(
        bench, server, "floor", "empty grpc.aio handler", IS_AUTHORIZED, payloads, bodies
    )


def local_floor(bench: Bench) -> dict[str, float] | None:
    """The empty handler again, right now (1 s at 1 and at 32 in flight): load drifts."""
    server = bench.floor
    if server is None or server.proc.poll() is not None:
        return None
    payloads, bodies = bench.floor_load
    lat = client.measure(server.address, IS_AUTHORIZED, payloads, 1, 1.0, 0.2, server.cpu)
    floor = {"p50_us": lat.p50_us, "rps": lat.rps, "cpu_us": lat.cpu_us_per_call or 0.0}
    if bench.h2load:
        sat = h2load.run(server.port, IS_AUTHORIZED, bodies, 32, 1.0, server.cpu)
        floor.update(rps=sat.rps, cpu_us=sat.cpu_us_per_request or 0.0)
    return floor


def _rpc_probe(address: str) -> Callable[[], bool]:
    def probe() -> bool:
        with grpc.insecure_channel(address) as channel:
            channel.unary_unary(GET_STATUS)(b"", timeout=1.0)
        return True

    return probe


def section_pdp(
    bench: Bench,
    bundle: Path,
    signer: check.Signer | None,
    calls: list[Call],
    bodies_calls: list[Call],
) -> None:
    server = servers.start_pdp(
        bundle, bench.logs, "pdp-main", decision_log=bench.settings.decision_log
    )
    try:
        with procs.running(server, procs.grpc_health_probe(server.address), 60):
            _pdp_single(bench, server, calls, bodies_calls)
            _pdp_batch(bench, server, calls)
            if signer is None:
                bench.skip("pdp", "Check (ES256 JWT)", "no Check service or JWT issuer in tree")
            else:
                _pdp_check(bench, server, signer)
    finally:
        servers.cleanup_decision_logs(bench.logs)


def _pdp_single(
    bench: Bench, server: procs.Server, calls: list[Call], bodies_calls: list[Call]
) -> None:
    payloads = [c.proto().SerializeToString() for c in calls]
    bodies = frames([c.proto().SerializeToString() for c in bodies_calls])
    bench.notes.append("pdp: " + verify_decisions(server.address, calls, payloads))
    bench.notes.append("pdp: " + verify_bodies(server.port, server.address, IS_AUTHORIZED, bodies))
    bench.rows += measure_points(
        bench, server, "pdp", "IsAuthorized", IS_AUTHORIZED, payloads, bodies
    )


def _pdp_batch(bench: Bench, server: procs.Server, calls: list[Call]) -> None:
    groups = [calls[i : i + BATCH_SIZE] for i in range(0, len(calls) - BATCH_SIZE + 1, BATCH_SIZE)]
    payloads = [
        pb.BatchIsAuthorizedRequest(requests=[c.proto() for c in group]).SerializeToString()
        for group in groups
    ]
    bodies = frames(payloads[: bench.settings.h2load_procs])
    verify_bodies(server.port, server.address, BATCH, bodies)
    name = f"BatchIsAuthorized ({BATCH_SIZE}/call)"
    bench.rows += measure_points(
        bench, server, "pdp", name, BATCH, payloads, bodies, per_call=BATCH_SIZE
    )


def _pdp_check(bench: Bench, server: procs.Server, signer: check.Signer) -> None:
    calls = check.check_mix(signer)
    payloads = [check.check_request(c) for c in calls]
    bench.notes.append("pdp Check: " + verify_check(server.address, payloads, calls))
    bodies = frames(payloads[: bench.settings.h2load_procs])
    verify_bodies(server.port, server.address, check.METHOD, bodies)
    name = "Check (ES256 JWT, tokens reused)"
    bench.rows += measure_points(bench, server, "pdp", name, check.METHOD, payloads, bodies)


def verify_decisions(address: str, calls: list[Call], payloads: list[bytes]) -> str:
    """Every request of the mix answered, decisions compared with the orders model."""
    answers = client.call_each(address, IS_AUTHORIZED, payloads)
    errors = [a for a in answers if isinstance(a, str)]
    mismatched = 0
    allowed = 0
    for call, answer in zip(calls, answers, strict=True):
        if isinstance(answer, str):
            continue
        decision = pb.IsAuthorizedResponse.FromString(answer).decision == pb.DECISION_ALLOW
        allowed += decision
        mismatched += call.expect is not None and decision != call.expect
    text = (
        f"{len(calls)} requests, {distinct_pairs(calls)} distinct principal/resource pairs, "
        f"{sum(1 for c in calls if c.entities)} carry entities; {allowed} allowed; "
        f"{len(errors)} RPC errors; {mismatched} decisions differ from the orders model"
    )
    if errors:
        text += f" (first error: {errors[0][:160]})"
    return text


def verify_check(address: str, payloads: list[bytes], calls: list[check.CheckCall]) -> str:
    """Check answers a decision for every token (never 401: our tokens must verify)."""
    answers = client.call_each(address, check.METHOD, payloads[:300])
    codes: dict[int, int] = {}
    for answer in answers:
        if isinstance(answer, str):
            raise RuntimeError(f"Check RPC failed: {answer}")
        code = check.check_status(answer)
        codes[code] = codes.get(code, 0) + 1
    if codes.get(16):
        raise RuntimeError(
            f"Check said UNAUTHENTICATED to {codes[16]} of our tokens: keys not accepted"
        )
    pairs = len({(c.sub, c.path) for c in calls})
    return (
        f"{len(calls)} requests, {pairs} distinct token/route pairs, "
        f"{len({c.sub for c in calls})} tokens; first 300: "
        f"{codes.get(0, 0)} OK, {codes.get(7, 0)} PERMISSION_DENIED"
    )


def section_peer(bench: Bench, calls: list[Call], bodies_calls: list[Call]) -> None:
    binary = cerbos.ensure_installed(bench.log)
    root = bench.work / "cerbos"
    grpc_port, http_port = procs.free_port(), procs.free_port()
    config = cerbos.write_config(root, grpc_port, http_port)
    cerbos.compile_policies(binary, root)
    messages = cerbos.load_messages(root / "gen")
    server = servers.start_cerbos(binary, config, grpc_port, bench.logs)
    with procs.running(server, procs.tcp_probe(grpc_port), 30):
        mapped = [c for c in calls if cerbos.mappable(c)]
        payloads = [cerbos.request_bytes(messages, c) for c in mapped]
        answers = client.call_each(server.address, cerbos.METHOD, payloads)
        errors = [a for a in answers if isinstance(a, str)]
        if errors:
            raise RuntimeError(f"Cerbos RPC failed: {errors[0]}")
        differ = sum(
            cerbos.allowed(messages, a, c.action) != c.expect
            for c, a in zip(mapped, answers, strict=True)
            if isinstance(a, bytes)
        )
        bench.notes.append(
            f"Cerbos {cerbos.VERSION}: {len(mapped)} requests of the mix (users on orders and "
            f"users; attributes in the request), {distinct_pairs(mapped)} distinct pairs; "
            f"{differ} decisions differ from pdp's model"
        )
        bodies = frames([cerbos.request_bytes(messages, c) for c in bodies_calls])
        verify_bodies(server.port, server.address, cerbos.METHOD, bodies)
        bench.rows += measure_points(
            bench,
            server,
            "peer",
            f"Cerbos {cerbos.VERSION} CheckResources",
            cerbos.METHOD,
            payloads,
            bodies,
        )


def section_workers(
    bench: Bench, bundle: Path, calls: list[Call], bodies_calls: list[Call]
) -> None:
    """`--workers 1` then `--workers 2`, back to back (load drifts over a run)."""
    if not servers.supports("--workers"):
        bench.skip("workers", "IsAuthorized --workers 2", "pdp serve has no --workers yet")
        return
    payloads = [c.proto().SerializeToString() for c in calls]
    bodies = frames([c.proto().SerializeToString() for c in bodies_calls])
    measured: dict[int, list[Row]] = {}
    for workers in (1, 2):
        name = f"pdp-workers{workers}"
        extra = ["--workers", str(workers)]
        server = servers.start_pdp(bundle, bench.logs, name, extra, bench.settings.decision_log)
        try:
            with procs.running(server, procs.grpc_health_probe(server.address), 60):
                measured[workers] = measure_points(
                    bench,
                    server,
                    "workers",
                    f"IsAuthorized --workers {workers}",
                    IS_AUTHORIZED,
                    payloads,
                    bodies,
                    inflights=(1, 32),
                    h2load_at=(32,),
                    duration=bench.settings.sweep_duration,
                )
        finally:
            servers.cleanup_decision_logs(bench.logs)
        bench.rows += measured[workers]
    one, two = measured[1][-1], measured[2][-1]
    if one.rps and two.rps:
        two.note = (
            two.note + "; " if two.note else ""
        ) + f"dec/s x workers 1: {two.rps / one.rps:.2f}x"


def first_pass(address: str, payloads: Sequence[bytes]) -> float:
    """Mean µs per request of one sequential pass over the whole mix, on a fresh server.

    It also warms whatever the server caches per request shape (policy slices), so the
    measured points that follow show the steady state; this figure shows the cold one.
    """
    started = time.perf_counter()
    answers = client.call_each(address, IS_AUTHORIZED, payloads)
    elapsed = time.perf_counter() - started
    failed = [a for a in answers if isinstance(a, str)]
    if failed:
        raise RuntimeError(f"{len(failed)} requests of the mix failed, e.g. {failed[0][:160]}")
    return elapsed * 1e6 / len(payloads)


def sweep_point(
    bench: Bench, group: str, name: str, bundle: Path, calls: list[Call], extra_note: str = ""
) -> Row:
    """One sweep point: a fresh pdp serve on `bundle`; p50 at 1 in flight, dec/s at 32."""
    server = servers.start_pdp(
        bundle, bench.logs, f"pdp-{group}", decision_log=bench.settings.decision_log
    )
    row = Row(group, name, "1|32")
    try:
        with procs.running(
            server, procs.grpc_health_probe(server.address), bench.settings.load_timeout
        ):
            payloads = [c.proto().SerializeToString() for c in calls]
            picks = [
                calls[i * len(calls) // bench.settings.h2load_procs]
                for i in range(bench.settings.h2load_procs)
            ]
            bodies = frames([c.proto().SerializeToString() for c in picks])
            verify_bodies(server.port, server.address, IS_AUTHORIZED, bodies)
            first = first_pass(server.address, payloads)
            p1, p32 = measure_points(
                bench,
                server,
                group,
                name,
                IS_AUTHORIZED,
                payloads,
                bodies,
                inflights=(1, 32),
                duration=bench.settings.sweep_duration,
                h2load_at=(32,),
                python_at=(1,),
            )
            row.p50_us, row.p99_us = p1.p50_us, p1.p99_us
            row.rps, row.cpu_us = p32.rps, p32.cpu_us
            row.raw = {
                "at1": p1.raw,
                "at32": p32.raw,
                "ready_seconds": server.ready_seconds,
                "first_pass_us": first,
            }
            row.note = (
                f"ready in {server.ready_seconds:.1f} s; first pass over the mix "
                f"{first:,.0f} µs/req" + (f"; {extra_note}" if extra_note else "")
            )
            if p1.note or p32.note:
                row.note += f"; {p1.note or p32.note}"
            row.raw["floor"] = local_floor(bench)
    except procs.StartError as exc:
        row.note = f"n/a: {str(exc)[:200]}"
        bench.log(row.note)
    servers.cleanup_decision_logs(bench.logs)
    return row


def section_policies(bench: Bench) -> None:
    for n in POLICY_COUNTS:
        if bench.remaining() < 25:
            bench.skip("policies", f"{n:,} policies", "time budget spent")
            continue
        bundle = bundles.write_policy_sweep_bundle(bench.bundles / f"policies-{n}", n, users=300)
        types, static, links = bundles.sweep_shape(n)
        calls = policy_sweep_mix(n)
        floor = inproc.measure(bundle, calls, min(1.0, bench.settings.sweep_duration))
        note = (
            f"{static} policies over {types} resource types + {links} linked grants; "
            f"cedarpy in-process p50 {floor.p50_us:,.0f} µs"
        )
        row = sweep_point(bench, "policies", f"{n:,} policies", bundle, calls, note)
        row.raw["cedarpy_inproc"] = asdict(floor)
        bench.rows.append(row)


def section_entities(bench: Bench) -> None:
    calls = entity_sweep_mix()
    previous: tuple[int, float] | None = None  # (entities, seconds to ready) of the last point
    start_cost: float | None = None  # seconds to ready with the smallest bundle: process start
    for n in ENTITY_COUNTS:
        name = f"{n:,} bundle entities"
        if bench.remaining() < 20:
            bench.skip("entities", name, "time budget spent")
            continue
        guess = (
            start_cost + (previous[1] - start_cost) * n / previous[0]
            if previous and start_cost is not None
            else 0.0
        )
        if previous and guess > bench.settings.load_timeout:
            why = (
                f"{previous[0]:,} entities took {previous[1]:.1f} s to load, so {n:,} would take "
                f"~{guess:.0f} s, over the {bench.settings.load_timeout:.0f} s allowed "
                "(loading is at least linear)"
            )
            bench.skip("entities", name, why)
            continue
        bundle = bundles.write_orders_bundle(bench.bundles / f"entities-{n}", entity_count=n)
        note = "requests carry their principal and resource entities"
        row = sweep_point(bench, "entities", name, bundle, calls, note)
        bench.rows.append(row)
        ready = row.raw.get("ready_seconds")
        previous = (n, ready) if ready else (n, bench.settings.load_timeout)
        start_cost = ready if start_cost is None else start_cost
        shutil.rmtree(bundle, ignore_errors=True)


def section_reload(bench: Bench, example: Path, calls: list[Call]) -> None:
    if not (servers.supports("--watch") or servers.supports("--reload")):
        bench.skip(
            "reload", "file write -> new revision serving", "pdp serve does not reload on change"
        )
        return
    bundle = bundles.copy_bundle(example, bench.bundles / "reload")
    target = next(iter(sorted(bundle.rglob("*.cedar"))))
    server = servers.start_pdp(
        bundle, bench.logs, "pdp-reload", decision_log=bench.settings.decision_log
    )
    iterations = 3 if bench.settings.quick else 6
    latencies: list[float] = []
    with procs.running(server, procs.grpc_health_probe(server.address), 60):
        payloads = [c.proto().SerializeToString() for c in calls]
        stop = threading.Event()
        during: dict[str, Any] = {}

        def load() -> None:
            window = iterations * 1.5 + 1
            during["lat"] = client.measure(server.address, IS_AUTHORIZED, payloads, 8, window, 0.2)
            stop.set()

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
                time.sleep(0.4)
        thread.join(timeout=30)
    servers.cleanup_decision_logs(bench.logs)
    row = Row("reload", "file write -> new revision serving", "-")
    if not latencies:
        row.note = "n/a: no new revision within 10 s of a policy file write"
    else:
        latencies.sort()
        row.note = (
            f"reload latency p50 {latencies[len(latencies) // 2]:,.0f} ms, "
            f"max {latencies[-1]:,.0f} ms "
            f"over {len(latencies)}/{iterations} writes (includes the watcher's debounce)"
        )
    lat = during.get("lat")
    if lat is not None:
        row.p50_us, row.p99_us, row.rps = lat.p50_us, lat.p99_us, lat.rps
        row.inflight = "8"
        row.note += f"; p50/p99 of IsAuthorized during the reloads; {lat.errors} RPC errors"
        row.raw["during"] = asdict(lat)
    row.raw["reload_ms"] = latencies
    bench.rows.append(row)


# --- ratios, targets, header --------------------------------------------------------------


def add_ratios(rows: list[Row]) -> None:
    """Each row against the empty-handler floor at the same in-flight, and Cerbos'."""
    floor = {r.inflight: r for r in rows if r.group == "floor" and r.name.startswith("empty")}
    peer = {r.inflight: r for r in rows if r.group == "peer"}
    for row in rows:
        if row.inflight == "-" or row.group == "reload":
            continue
        first, _, last = row.inflight.partition("|")
        last = last or first
        f_lat, f_rate = floor.get(first), floor.get(last)
        local = row.raw.get("floor")  # sweeps: the floor measured next to the point
        f_p50 = local["p50_us"] if local else f_lat.p50_us if f_lat else None
        f_rps = local["rps"] if local else f_rate.rps if f_rate else None
        f_cpu = local["cpu_us"] if local else f_rate.cpu_us if f_rate else None
        row.x_p50, row.x_rps, row.x_cpu = (
            _div(row.p50_us, f_p50),
            _div(row.rps, f_rps),
            _div(row.cpu_us, f_cpu),
        )
        p = peer.get(last)
        if p and row.rps and p.rps and row.group != "peer":
            row.x_peer = row.rps / p.rps


def _find(rows: list[Row], group: str, prefix: str, inflight: str) -> Row | None:
    return next(
        (
            r
            for r in rows
            if r.group == group and r.name.startswith(prefix) and r.inflight == inflight
        ),
        None,
    )


def _saturation(rows: list[Row], group: str, prefix: str) -> float | None:
    rates = [
        r.rps
        for r in rows
        if r.group == group and r.name.startswith(prefix) and r.inflight in ("8", "32") and r.rps
    ]
    return max(rates) if rates else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _sweep_ratio(lo: Row | None, hi: Row | None, field: str) -> tuple[float | None, str]:
    """hi/lo, each point first divided by the floor measured beside it (load drifts)."""
    if hi is None or lo is None:
        return None, "sweep not run"
    raw = _div(getattr(hi, field), getattr(lo, field))
    if raw is None:
        return None, (hi.note if not getattr(hi, field) else lo.note)[:160]
    ratio = "x_rps" if field == "rps" else "x_p50"
    normalized = _div(getattr(hi, ratio), getattr(lo, ratio))
    if normalized is None:
        return raw, f"raw ratio {raw:.2f}x (no local floor)"
    return normalized, f"each point against the floor measured beside it; raw ratio {raw:.2f}x"


def _sweep_target(
    name: str, goal: str, found: tuple[float | None, str], limit: float, higher: bool
) -> Target:
    return Target(name, goal, found[0], limit, higher, found[1])


def targets(rows: list[Row]) -> list[Target]:
    """The issue's five targets, from this run's rows."""
    pdp_sat, peer_sat = (
        _saturation(rows, "pdp", "IsAuthorized"),
        _saturation(rows, "peer", "Cerbos"),
    )
    pdp1, floor1 = _find(rows, "pdp", "IsAuthorized", "1"), _find(rows, "floor", "empty", "1")
    check1 = _find(rows, "pdp", "Check", "1")
    p_lo, p_hi = _find(rows, "policies", "50 ", "1|32"), _find(rows, "policies", "10,000", "1|32")
    e_lo, e_hi = _find(rows, "entities", "100 ", "1|32"), _find(rows, "entities", "100,000", "1|32")
    floor_sat = _saturation(rows, "floor", "empty")
    return [
        Target(
            "IsAuthorized saturation vs Cerbos (same mix, h2load)",
            ">= 1.0x",
            _div(pdp_sat, peer_sat),
            1.0,
            True,
            f"pdp {_fmt(pdp_sat)} dec/s, Cerbos {_fmt(peer_sat)} dec/s, empty-handler floor "
            f"{_fmt(floor_sat)}/s"
            if peer_sat
            else "run `make bench-peers` to measure Cerbos",
        ),
        Target(
            "IsAuthorized p50 at 1 in flight vs empty-handler floor",
            "<= 1.3x",
            _div(pdp1 and pdp1.p50_us, floor1 and floor1.p50_us),
            1.3,
            False,
        ),
        _sweep_target(
            "dec/s at 10,000 policies vs at 50 policies (32 in flight)",
            ">= 0.8x",
            _sweep_ratio(p_lo, p_hi, "rps"),
            0.8,
            True,
        ),
        _sweep_target(
            "p50 with 100,000 bundle entities vs with 100 (1 in flight)",
            "<= 1.2x",
            _sweep_ratio(e_lo, e_hi, "p50_us"),
            1.2,
            False,
        ),
        Target(
            "Check (ES256, cached token) p50 vs IsAuthorized p50 (1 in flight)",
            "<= 1.15x",
            _div(check1 and check1.p50_us, pdp1 and pdp1.p50_us),
            1.15,
            False,
        ),
    ]


def header(settings: Settings, bundle_note: str, notes: list[str]) -> list[str]:
    """What this run was: machine, tree, settings, mixes, verification results."""
    rev = _git("rev-parse", "--short", "HEAD")
    dirty = " (+ uncommitted changes)" if _git("status", "--porcelain", "--", "pdp") else ""
    load = os.getloadavg()
    lines = [
        f"pdp bench  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
        f"{os.cpu_count()} cores  load avg {load[0]:.1f}/{load[1]:.1f}  tree {rev}{dirty}",
        f"settings: {'QUICK ' if settings.quick else ''}{settings.duration:g} s per point "
        f"({settings.sweep_duration:g} s in sweeps), h2load {settings.h2load_procs} processes x "
        f"one body each, decision log {'on (file)' if settings.decision_log else 'off'}; "
        f"main bundle: {bundle_note}",
        "p50/p99: Python grpc.aio client over the whole mix; dec/s and CPU: h2load at 8 and 32 in "
        "flight, the Python client at 1; CPU = server utime+stime per decision.",
        "x floor: against the empty grpc.aio handler at the same in-flight, this run (sweeps: p50 "
        "at 1, dec/s and CPU at 32). Shared 2-core machine: numbers are noisy, read ratios.",
    ]
    lines += [f"check: {n}" for n in notes]
    return lines


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=servers.REPO)
    return result.stdout.strip()


# --- main ---------------------------------------------------------------------------------


def run(settings: Settings) -> int:
    procs.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="pdp-bench-") as tmp:
        bench = Bench(settings, Path(tmp))
        if not bench.h2load:
            bench.notes.append("h2load missing: decisions/s from the Python client only")
        bundle, signer, bundle_note = main_bundle(bench)
        calls = orders_mix()
        bodies_calls = pick_bodies(calls, settings.h2load_procs)
        payloads = [c.proto().SerializeToString() for c in calls]
        bodies = frames([c.proto().SerializeToString() for c in bodies_calls])
        steps: list[tuple[str, Callable[[], None]]] = [
            ("floor", lambda: section_floor_inproc(bench, bundle, calls)),
            ("floor", lambda: section_floor_empty(bench, payloads, bodies)),
            (  # right before pdp's IsAuthorized rows, so the two see the same machine load
                "peer",
                lambda: (
                    section_peer(bench, calls, bodies_calls)
                    if settings.peers
                    else bench.skip("peer", "Cerbos", "run `make bench-peers` (or BENCH_PEERS=1)")
                ),
            ),
            ("pdp", lambda: section_pdp(bench, bundle, signer, calls, bodies_calls)),
            ("workers", lambda: section_workers(bench, bundle, calls, bodies_calls)),
            ("policies", lambda: section_policies(bench)),
            ("entities", lambda: section_entities(bench)),
            ("reload", lambda: section_reload(bench, bundle, calls)),
        ]
        for section, step in steps:
            if not bench.wants(section):
                continue
            if bench.remaining() < 10:
                bench.skip(section, section, "time budget spent")
                continue
            try:
                step()
            except Exception as exc:  # one broken section must not sink the whole run
                bench.log(f"{section} failed: {type(exc).__name__}: {exc}")
                bench.rows.append(
                    Row(section, f"{section} failed", note=f"error: {str(exc)[:300]}")
                )
        if bench.floor is not None:
            bench.floor.stop()
        bench.rows.sort(key=lambda r: GROUPS.index(r.group) if r.group in GROUPS else len(GROUPS))
        add_ratios(bench.rows)
        found = targets(bench.rows)
        meta = {
            "settings": asdict(settings),
            "started": datetime.now(UTC).isoformat(),
            "seconds": time.monotonic() - bench.started,
            "notes": bench.notes,
            "bundle": bundle_note,
            "tree": _git("rev-parse", "HEAD"),
            "machine": {"cores": os.cpu_count(), "load": os.getloadavg(), "node": platform.node()},
        }
        print(report.render(bench.rows, found, header(settings, bundle_note, bench.notes)))
        report.write_json(RESULTS, bench.rows, found, meta)
        bench.log(f"done in {time.monotonic() - bench.started:.0f} s; wrote {RESULTS}")
    return 0


def main() -> int:
    return run(Settings.from_env(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
