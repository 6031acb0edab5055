"""The shadow section: IsAuthorized p50 with and without `--shadow` on a differing candidate."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from bench import procs, servers
from bench.context import IS_AUTHORIZED, Bench
from bench.measure import Contender, frames, rounds
from bench.mix import Call

# Both servers decide every call (no decision cache), so the shadow's extra evaluation of
# each decision on the candidate is what the second row pays, off the response path.
NO_CACHE = ["--decision-cache-size", "0"]
OFF, ON = ("IsAuthorized cold, no shadow", "IsAuthorized cold, --shadow (candidate differs)")


def section_shadow(bench: Bench, bundle: Path, calls: list[Call]) -> None:
    if not servers.supports("--shadow"):
        bench.skip("shadow", OFF, "pdp serve has no --shadow yet")
        return
    candidate = bench.bundles / "shadow-candidate"
    shutil.copytree(bundle, candidate)
    _drop_policy(candidate, '@id("customer-read-own-order")')
    payloads = [c.proto().SerializeToString() for c in calls]
    with contextlib.ExitStack() as stack:
        found = []
        for name, extra in ((OFF, NO_CACHE), (ON, [*NO_CACHE, "--shadow", str(candidate)])):
            slug = f"pdp-shadow-{len(found)}"
            server = servers.start_pdp(bundle, bench.logs, slug, extra, bench.settings.decision_log)
            stack.callback(server.stop)
            server.wait_ready(procs.grpc_health_probe(server.address), bench.settings.load_timeout)
            found.append(Contender(name, server, IS_AUTHORIZED, payloads, frames(payloads[:8])))
        bench.rows += rounds(bench, "shadow", found, floor_first=True)
    servers.cleanup_decision_logs(bench.logs)


def _drop_policy(folder: Path, marker: str) -> None:
    """Remove the policy annotated with `marker` (up to its closing `;`) from the candidate."""
    for path in folder.rglob("*.cedar"):
        text = path.read_text(encoding="utf-8")
        start = text.find(marker)
        if start < 0:
            continue
        end = text.index(";", start) + 1
        path.write_text(text[:start] + text[end:], encoding="utf-8")
        return
    raise ValueError(f"no policy {marker} in {folder}")
