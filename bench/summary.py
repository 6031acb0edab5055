"""Ratios against the floors, the performance targets (issue 16's), and the table's header."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess

from bench import cachelog, servers
from bench.context import Settings
from bench.measure import fmt
from bench.report import Row, Target

GROUPS = (
    "floor",
    "plan",
    "pdp",
    "peer",
    "versus",
    "workers",
    "protection",
    "shadow",
    "cache",
    "policies",
    "entities",
    "reload",
)
FLOOR = "empty grpc.aio handler"
PDP = "pdp IsAuthorized warm"  # the decision cache on (the default); the mix repeats
PDP_COLD = "pdp IsAuthorized cold"  # --decision-cache-size 0: every request decided
PDP_W2 = "pdp IsAuthorized warm --workers 2"
CHECK = "pdp Check warm (ES256 JWT)"


def order(rows: list[Row]) -> list[Row]:
    """Rows in table order (stable within a group)."""
    rank = {g: n for n, g in enumerate(GROUPS)}
    return sorted(rows, key=lambda r: rank.get(r.group, len(GROUPS)))


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def add_ratios(rows: list[Row]) -> None:
    """Each row against the empty-handler floor: the one measured beside it in the same
    rounds when there is one, else the floor rows at the same in-flight; and vs Cerbos."""
    floor = {r.inflight: r for r in rows if r.group == "floor" and r.name == FLOOR}
    peer = {r.inflight: r for r in rows if r.group == "peer"}
    versus_peer = next(
        (r for r in rows if r.group == "versus" and r.name.startswith("Cerbos")), None
    )
    for row in rows:
        if row.inflight == "-" or row.group == "reload":
            continue
        first, _, last = row.inflight.partition("|")
        last = last or first
        local = row.raw.get("floor")
        if local:
            f_p50, f_rps, f_cpu = local["p50_us"], local["rps"], local["cpu_us"]
        else:
            f_lat, f_rate = floor.get(first), floor.get(last)
            f_p50 = f_lat.p50_us if f_lat else None
            f_rps = f_rate.rps if f_rate else None
            f_cpu = f_rate.cpu_us if f_rate else None
        row.x_p50 = _div(row.p50_us, f_p50)
        row.x_rps = _div(row.rps, f_rps)
        row.x_cpu = _div(row.cpu_us, f_cpu)
        if row.group == "pdp" and last in peer:
            row.x_peer = _div(row.rps, peer[last].rps)
        elif row.group == "versus" and versus_peer is not None and row is not versus_peer:
            row.x_peer = _div(row.rps, versus_peer.rps)


def _find(rows: list[Row], group: str, name: str) -> Row | None:
    exact = next((r for r in rows if r.group == group and r.name == name), None)
    return exact or next((r for r in rows if r.group == group and r.name.startswith(name)), None)


def _get(row: Row | None, field: str) -> float | None:
    return getattr(row, field) if row is not None else None


def _rounds(row: Row | None, field: str) -> list[float | None]:
    return [r.get(field) for r in row.raw.get("rounds", [])] if row is not None else []


def _paired(top: Row | None, bottom: Row | None, field: str) -> float | None:
    """The median of per-round ratios when both rows were measured in the same interleaved
    rounds (drift over a run cancels within a round), else the ratio of the medians."""
    ups, downs = _rounds(top, field), _rounds(bottom, field)
    pairs = [a / b for a, b in zip(ups, downs, strict=False) if a and b]
    same = top is not None and bottom is not None and top.group == bottom.group
    if same and pairs and len(ups) == len(downs) == len(pairs):
        return statistics.median(pairs)
    return _div(_get(top, field), _get(bottom, field))


def _compare(
    name: str,
    goal: str,
    limit: float,
    higher: bool,
    top: Row | None,
    bottom: Row | None,
    field: str,
    missing: str = "",
) -> Target:
    value = _paired(top, bottom, field)
    if value is not None:
        unit = {"rps": "dec/s", "cpu_us": "µs CPU/dec"}.get(field, "µs")
        detail = f"{_label(top)} {fmt(_get(top, field))} vs {_label(bottom)} "
        detail += f"{fmt(_get(bottom, field))} {unit} (medians; ratio: median of per-round ratios)"
    else:
        detail = missing or next(
            (r.note[:200] for r in (top, bottom) if r is not None and r.note), "not measured"
        )
    return Target(name, goal, value, limit, higher, detail)


def _label(row: Row | None) -> str:
    return f"{row.group}/{row.name}" if row is not None else "-"


def _floor_target(rows: list[Row]) -> Target:
    """pdp cold (log on) CPU per decision against the empty handler's (same rounds) plus
    cedarpy's in-process cost on the same request bodies."""
    name = "pdp CPU/dec (cold, log on) vs empty handler + cedarpy in-process"
    pdp = _find(rows, "cache", cachelog.ELSEWHERE)
    empty = _find(rows, "cache", FLOOR)
    cedar = _find(rows, "cache", cachelog.CEDAR_INPROC)
    alone = _get(cedar, "cpu_us")
    if pdp is None or empty is None or not alone:
        return Target(name, "<= 1.25x", None, 1.25, False, "needs the floor and cache sections")
    ratios = [
        a / (b + alone)
        for a, b in zip(_rounds(pdp, "cpu_us"), _rounds(empty, "cpu_us"), strict=False)
        if a and b
    ]
    value = statistics.median(ratios) if ratios else None
    server = _find(rows, "cache", cachelog.CEDAR_SERVER)
    detail = (
        f"{fmt(_get(pdp, 'cpu_us'))} vs {fmt(_get(empty, 'cpu_us'))} + {fmt(alone)} µs CPU/dec "
        f"(median of per-round ratios); the empty handler deciding with cedarpy in one server: "
        f"{fmt(_get(server, 'cpu_us'))}"
    )
    return Target(name, "<= 1.25x", value, 1.25, False, detail)


def targets(rows: list[Row]) -> list[Target]:
    """Issue 16's targets (and the earlier ones it keeps), each from rows measured side by
    side in the same interleaved rounds; a target that says cold uses cold rows."""
    floor, pdp = _find(rows, "versus", FLOOR), _find(rows, "versus", PDP)
    cold = _find(rows, "versus", PDP_COLD)
    pdp2 = next((r for r in rows if r.group == "versus" and r.name == PDP_W2), None)
    check, peer = _find(rows, "versus", CHECK), _find(rows, "versus", "Cerbos")
    p50, p10k = _find(rows, "policies", "50 "), _find(rows, "policies", "10,000")
    e100, e100k = _find(rows, "entities", "100 "), _find(rows, "entities", "100,000")
    elsewhere, beside = (
        _find(rows, "cache", cachelog.ELSEWHERE),
        _find(rows, "cache", cachelog.BESIDE),
    )
    off, warm = _find(rows, "cache", cachelog.OFF), _find(rows, "cache", cachelog.WARM)
    cache_floor = _find(rows, "cache", FLOOR)
    no_peer = "not measured: run `make bench-peers` to measure Cerbos"
    best = max((r for r in (pdp, pdp2) if r and r.rps), key=lambda r: r.rps or 0, default=pdp)
    return [
        _compare(
            "log file beside the bundle vs elsewhere, CPU/dec (cold)",
            "<= 1.05x",
            1.05,
            False,
            beside,
            elsewhere,
            "cpu_us",
        ),
        _compare(
            "decision log on vs off, CPU/dec (cold)",
            "<= 1.05x",
            1.05,
            False,
            elsewhere,
            off,
            "cpu_us",
        ),
        _floor_target(rows),
        _compare(
            "warm mix throughput (cache on) vs empty handler (32 in flight)",
            ">= 0.85x",
            0.85,
            True,
            warm,
            cache_floor,
            "rps",
        ),
        _compare(
            "IsAuthorized throughput vs Cerbos, warm (best of 1 and 2 workers)",
            ">= 1.0x",
            1.0,
            True,
            best,
            peer,
            "rps",
            "" if peer else no_peer,
        ),
        _compare(
            "IsAuthorized throughput vs Cerbos, cold",
            ">= 0.6x",
            0.6,
            True,
            cold,
            peer,
            "rps",
            "" if peer else no_peer,
        ),
        _compare(
            "IsAuthorized p50 at 1 in flight vs empty handler (cold)",
            "<= 1.3x",
            1.3,
            False,
            cold,
            floor,
            "p50_us",
        ),
        _compare(
            "dec/s at 10,000 policies vs at 50 (cold, 32 in flight)",
            ">= 0.8x",
            0.8,
            True,
            p10k,
            p50,
            "rps",
        ),
        _compare(
            "p50 with 100,000 bundle entities vs 100 (cold, 1 in flight)",
            "<= 1.2x",
            1.2,
            False,
            e100k,
            e100,
            "p50_us",
        ),
        _compare(
            "Check (ES256, cached token) p50 vs IsAuthorized p50 (both warm, 1 in flight)",
            "<= 1.15x",
            1.15,
            False,
            check,
            pdp,
            "p50_us",
        ),
    ]


def header(settings: Settings, bundle_note: str, notes: list[str]) -> list[str]:
    """What this run was: machine, tree, settings, how to read it, what was verified."""
    rev = _git("rev-parse", "--short", "HEAD")
    dirty = " (+ uncommitted changes in pdp/)" if _git("status", "--porcelain", "--", "pdp") else ""
    load = os.getloadavg()
    mode = "QUICK " if settings.quick else ""
    lines = [
        f"pdp bench  {platform.node()}  {os.cpu_count()} cores  load avg {load[0]:.1f}/"
        f"{load[1]:.1f} (1/5 min)  tree {rev}{dirty}",
        f"settings: {mode}{settings.duration:g} s per 1/8/32 point; {settings.rounds} interleaved "
        f"round(s) of {settings.round_duration:g} s per measurement for versus and sweeps; h2load "
        f"{settings.h2load_procs} processes x one body; decision log "
        f"{'on (file)' if settings.decision_log else 'off'}; main bundle: {bundle_note}",
        "p50/p99: Python grpc.aio client, whole mix round-robin. dec/s and CPU (server utime+"
        "stime per decision): h2load at 8 and 32 in flight, the Python client at 1.",
        "xfloor: vs the empty grpc.aio handler (same in-flight; versus and sweeps: measured in "
        "the same interleaved rounds). xCerbos: dec/s vs Cerbos. Noisy machine: read ratios.",
    ]
    lines += [f"check: {n}" for n in notes]
    return lines


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=servers.REPO)
    return result.stdout.strip()


def tree() -> str:
    """The commit measured."""
    return _git("rev-parse", "HEAD")
