"""Measuring servers: points at 1/8/32 in flight, and interleaved rounds for fair comparisons."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench import client, h2load, procs
from bench.context import IS_AUTHORIZED, Bench
from bench.report import Row

INFLIGHTS = (1, 8, 32)


@dataclass(frozen=True)
class Contender:
    """A running server and the load to send it: the whole mix, and h2load's bodies."""

    label: str
    server: procs.Server
    method: str
    payloads: Sequence[bytes]
    bodies: Sequence[bytes] = ()  # gRPC frames for h2load; empty: no saturation run
    note: str = ""


def fmt(value: float | None) -> str:
    """A figure for log lines: thousands separated, "-" when absent."""
    return "-" if value is None else f"{value:,.0f}"


def frames(payloads: Sequence[bytes]) -> list[bytes]:
    """h2load bodies: each payload as one gRPC length-prefixed message."""
    return [h2load.grpc_frame(p) for p in payloads]


def points(
    bench: Bench,
    who: Contender,
    group: str,
    inflights: Sequence[int] = INFLIGHTS,
    per_call: int = 1,
    h2load_at: Sequence[int] = (8, 32),
) -> list[Row]:
    """One row per in-flight level: p50/p99 from the Python client over the whole mix,
    decisions/s and server CPU from h2load where it runs (else from the Python client)."""
    client.measure(who.server.address, who.method, who.payloads, 8, bench.settings.warmup, 0.0)
    rows = []
    for inflight in inflights:
        row = Row(group, who.label, str(inflight))
        try:
            _python(bench, who, row, inflight, bench.settings.duration, per_call)
            if inflight in h2load_at:
                _saturate(bench, who, row, inflight, bench.settings.duration, per_call)
        except Exception as exc:  # one point failing must not lose the others
            row.note = f"error: {type(exc).__name__}: {str(exc)[:200]}"
        bench.log(
            f"{group} {who.label} @{inflight}: p50 {fmt(row.p50_us)} µs, {fmt(row.rps)} dec/s, "
            f"CPU {fmt(row.cpu_us)} µs/dec {row.note}"
        )
        rows.append(row)
    if per_call > 1:
        rows[0].note = (rows[0].note + "; " if rows[0].note else "") + (
            f"p50/p99 per call of {per_call}; dec/s and CPU per decision"
        )
    return rows


def _python(
    bench: Bench, who: Contender, row: Row, inflight: int, duration: float, per_call: int = 1
) -> None:
    lat = client.measure(
        who.server.address,
        who.method,
        who.payloads,
        inflight,
        duration,
        bench.settings.warmup,
        who.server.cpu,
    )
    row.p50_us, row.p99_us = lat.p50_us, lat.p99_us
    row.rps = lat.rps * per_call
    row.cpu_us = lat.cpu_us_per_call / per_call if lat.cpu_us_per_call else None
    row.raw.setdefault("python", []).append(asdict(lat))
    if lat.errors:
        row.note = f"{lat.errors} RPC errors, e.g. {lat.first_error[:120]}"


def _saturate(
    bench: Bench, who: Contender, row: Row, inflight: int, duration: float, per_call: int = 1
) -> None:
    if not (bench.h2load and who.bodies):
        return
    result = h2load.run(who.server.port, who.method, who.bodies, inflight, duration, who.server.cpu)
    row.rps = result.rps * per_call
    row.cpu_us = result.cpu_us_per_request / per_call if result.cpu_us_per_request else None
    row.raw.setdefault("h2load", []).append(asdict(result))
    if not result.ok:
        row.note = (
            f"h2load: {result.failed} failed, {result.errored} errored, "
            f"{result.broken}/{result.processes} unreadable {result.problem[:120]}"
        )


def rounds(
    bench: Bench, group: str, contenders: Sequence[Contender], floor_first: bool = True
) -> list[Row]:
    """Interleaved rounds: each contender in turn, p50 at 1 in flight then h2load at 32.

    The machine's load drifts over a run; measuring the contenders of a comparison back to
    back, several times, in a rotating order (reversed every other round, so no contender
    always runs right after the same one), and keeping the medians, cancels most of it.
    The first contender is the floor: every row's ratios are against it, from the same rounds.
    """
    samples: dict[str, list[Row]] = {c.label: [] for c in contenders}
    count = bench.settings.rounds
    for n in range(count):
        order = list(contenders[n % len(contenders) :]) + list(contenders[: n % len(contenders)])
        if n % 2:  # reversed every other round: no contender always follows the same one
            order.reverse()
        for who in order:
            row = Row(group, who.label, "1|32")
            try:
                who.server.cpu()  # fail early when the server is gone
                _python(bench, who, row, 1, bench.settings.round_duration)
                at1_cpu = row.cpu_us
                _saturate(bench, who, row, 32, bench.settings.round_duration)
                if not (bench.h2load and who.bodies):
                    row.cpu_us = at1_cpu
            except Exception as exc:
                row.note = f"error: {type(exc).__name__}: {str(exc)[:200]}"
                row.rps = row.cpu_us = None  # never a 1-in-flight rate in a saturation column
            samples[who.label].append(row)
        bench.log(f"{group}: round {n + 1}/{count} done")
    rows = [_median_row(group, who, samples[who.label]) for who in contenders]
    if floor_first:
        floor = rows[0]
        local = {"p50_us": floor.p50_us, "rps": floor.rps, "cpu_us": floor.cpu_us}
        for row in rows:
            row.raw["floor"] = local
    return rows


def _median_row(group: str, who: Contender, runs: list[Row]) -> Row:
    def med(field: str) -> float | None:
        values = [getattr(r, field) for r in runs if getattr(r, field)]
        return statistics.median(values) if values else None

    notes = sorted({r.note for r in runs if r.note})
    row = Row(group, who.label, "1|32", med("p50_us"), med("p99_us"), med("rps"), med("cpu_us"))
    row.note = "; ".join([n for n in [who.note, *notes] if n])
    row.raw["rounds"] = [
        {"p50_us": r.p50_us, "p99_us": r.p99_us, "rps": r.rps, "cpu_us": r.cpu_us} for r in runs
    ]
    return row


def verify_bodies(who: Contender) -> str:
    """Each h2load body answered OK (Python client, and grpc-status in trailers via nghttp)."""
    answers = client.call_each(who.server.address, who.method, [b[5:] for b in who.bodies])
    failed = [a for a in answers if isinstance(a, str)]
    if failed:
        raise RuntimeError(f"an h2load body of {who.label} is not answered OK: {failed[0]}")
    trailers = [h2load.grpc_status_in_trailers(who.server.port, who.method, b) for b in who.bodies]
    if any(t not in (None, "0") for t in trailers):
        raise RuntimeError(f"an h2load body of {who.label} gets grpc-status {trailers}")
    seen = "grpc-status 0 in trailers" if all(t == "0" for t in trailers) else "trailers not read"
    return f"{len(who.bodies)} h2load bodies: OK via Python client, {seen}"


def first_pass(address: str, payloads: Sequence[bytes], method: str = IS_AUTHORIZED) -> float:
    """Mean µs per request of one sequential pass over the whole mix, on a fresh server.

    It also warms whatever the server caches per request shape (policy slices), so the
    measurements that follow show the steady state; this figure shows the cold one.
    """
    started = time.perf_counter()
    answers = client.call_each(address, method, payloads)
    elapsed = time.perf_counter() - started
    failed = [a for a in answers if isinstance(a, str)]
    if failed:
        raise RuntimeError(f"{len(failed)} requests of the mix failed, e.g. {failed[0][:160]}")
    return elapsed * 1e6 / len(payloads)
