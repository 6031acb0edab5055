"""The cache section: IsAuthorized cold and warm, with the decision log elsewhere, beside the
bundle (the watcher case of issue 16) and off, beside the floors they are judged against.

Measured in the same interleaved rounds: the empty grpc.aio handler (the transport floor),
the empty handler deciding with cedarpy alone in one server (`bench/cedar_server.py`: what
cedarpy costs inside a gRPC server), and pdp. cedarpy in-process on the same 8 request bodies
h2load sends is measured first (one thread: wall time is CPU time), for the floor target.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import asdict
from pathlib import Path

from bench import inproc, procs, servers, summary
from bench.context import IS_AUTHORIZED, Bench
from bench.measure import Contender, frames, rounds
from bench.mix import Call
from bench.report import Row

COLD = ["--decision-cache-size", "0"]  # every call decided by Cedar
ELSEWHERE, BESIDE, OFF, WARM = (
    "IsAuthorized cold, log elsewhere",
    "IsAuthorized cold, log beside the bundle",
    "IsAuthorized cold, decision log off",
    "IsAuthorized warm (decision cache on), log elsewhere",
)
ROWS = ((ELSEWHERE, COLD, "elsewhere"), (BESIDE, COLD, "beside"), (OFF, COLD, "off"))
ROWS += ((WARM, [], "elsewhere"),)
CEDAR_SERVER = "empty handler + cedarpy, one server (cold)"
CEDAR_INPROC = "cedarpy in-process on the h2load bodies"


def section_cache(bench: Bench, bundle: Path, calls: list[Call], bodies_calls: list[Call]) -> None:
    if not servers.supports("--decision-cache-size"):
        bench.skip("cache", ROWS[0][0], "pdp serve has no --decision-cache-size yet")
        return
    alone = inproc.measure(bundle, bodies_calls, min(2.0, bench.settings.duration))
    bench.rows.append(
        Row(
            "cache",
            CEDAR_INPROC,
            "-",
            alone.p50_us,
            alone.p99_us,
            alone.rps,
            1e6 / alone.rps if alone.rps else None,
            note="CPU µs/dec = 1 / decisions per second of one thread; the floor of the "
            "pdp-vs-floors target (with the empty handler's CPU of the same rounds)",
            raw={"inproc": asdict(alone)},
        )
    )
    beside = bench.bundles / "beside"  # the bundle's parent: where `pdp serve b > log` writes
    served = beside / "bundle"
    shutil.copytree(bundle, served)
    payloads = [c.proto().SerializeToString() for c in calls]
    bodies = frames([c.proto().SerializeToString() for c in bodies_calls])
    with contextlib.ExitStack() as stack:
        found = []
        floor = bench.shared.get("floor")
        if floor is not None:
            found.append(floor)
        cedar = servers.start_cedar(served, bench.logs)
        stack.callback(cedar.stop)
        cedar.wait_ready(procs.tcp_probe(cedar.port), bench.settings.load_timeout)
        found.append(Contender(CEDAR_SERVER, cedar, IS_AUTHORIZED, payloads, bodies))
        for name, extra, log in ROWS:
            slug = f"pdp-cache-{len(found)}"
            logs = beside if log == "beside" else bench.logs
            server = servers.start_pdp(served, logs, slug, extra, log != "off")
            stack.callback(server.stop)
            server.wait_ready(procs.grpc_health_probe(server.address), bench.settings.load_timeout)
            found.append(Contender(name, server, IS_AUTHORIZED, payloads, bodies))
        rows = rounds(bench, "cache", found, floor_first=floor is not None)
        if floor is not None:
            rows[0].name = f"{summary.FLOOR} (same rounds)"
        bench.rows += rows
    servers.cleanup_decision_logs(bench.logs)
    servers.cleanup_decision_logs(beside)
