"""The cache section: IsAuthorized cold and warm, with the decision log elsewhere, beside the
bundle (the watcher case of issue 16) and off."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from bench import procs, servers
from bench.context import IS_AUTHORIZED, Bench
from bench.measure import Contender, frames, rounds
from bench.mix import Call

COLD = ["--decision-cache-size", "0"]  # every call decided by Cedar
ROWS = (
    ("IsAuthorized cold, log elsewhere", COLD, "elsewhere"),
    ("IsAuthorized cold, log beside the bundle", COLD, "beside"),
    ("IsAuthorized cold, decision log off", COLD, "off"),
    ("IsAuthorized warm (decision cache on)", [], "elsewhere"),
)


def section_cache(bench: Bench, bundle: Path, calls: list[Call]) -> None:
    if not servers.supports("--decision-cache-size"):
        bench.skip("cache", ROWS[0][0], "pdp serve has no --decision-cache-size yet")
        return
    beside = bench.bundles / "beside"  # the bundle's parent: where `pdp serve b > log` writes
    served = beside / "bundle"
    shutil.copytree(bundle, served)
    payloads = [c.proto().SerializeToString() for c in calls]
    with contextlib.ExitStack() as stack:
        found = []
        for name, extra, log in ROWS:
            slug = f"pdp-cache-{len(found)}"
            logs = beside if log == "beside" else bench.logs
            server = servers.start_pdp(served, logs, slug, extra, log != "off")
            stack.callback(server.stop)
            server.wait_ready(procs.grpc_health_probe(server.address), bench.settings.load_timeout)
            found.append(Contender(name, server, IS_AUTHORIZED, payloads, frames(payloads[:8])))
        bench.rows += rounds(bench, "cache", found, floor_first=True)
    servers.cleanup_decision_logs(bench.logs)
    servers.cleanup_decision_logs(beside)
