"""The protection section: `Check` p50 with protection.yaml off, in-process and in Redis."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

from bench import check, procs, servers
from bench.context import Bench
from bench.measure import Contender, first_pass, frames, rounds

# Generous on purpose: every detector and limit runs on every request, none ever refuses, so
# the rows measure the protection step itself (the mix is ~1,000 requests over 400 users).
PROTECTION = """
limits:
  - {name: per-user, key: principal, limit: 1000000, window: 1s}
  - {name: per-route, key: principal+route, limit: 1000000, window: 1s}
detectors:
  bola_enumeration: {window: 1m, distinct_ids: 10000, denied_fraction: 0.9, action: alert}
  auth_failures: {window: 1m, unauthenticated: 1000000, forbidden: 1000000, action: alert}
  token_spread: {window: 1m, addresses: 10000, action: alert}
"""
OFF, MEMORY, REDIS = (  # warm: the decision cache on (default), protection runs anyway
    "Check warm, protection off",
    "Check warm, protection in-process",
    "Check warm, protection Redis",
)


def section_protection(bench: Bench, bundle: Path, signer: check.Signer | None) -> None:
    if signer is None:
        bench.skip("protection", OFF, "no Check service or JWT issuer in this tree")
        return
    if not servers.supports("--state"):
        bench.skip("protection", OFF, "pdp serve has no --state yet")
        return
    protected = bench.bundles / "protected"
    shutil.copytree(bundle, protected)
    (protected / "protection.yaml").write_text(PROTECTION)
    payloads = [check.check_request(c) for c in check.check_mix(signer)]
    with contextlib.ExitStack() as stack:
        wanted = [(OFF, bundle, []), (MEMORY, protected, [])]
        redis = _redis(bench, stack)
        if redis is not None:
            wanted.append((REDIS, protected, ["--state", redis]))
        else:
            bench.skip("protection", REDIS, "redis-server is not installed")
        found = []
        for name, where, extra in wanted:
            slug = f"pdp-protection-{len(found)}"
            server = servers.start_pdp(where, bench.logs, slug, extra, bench.settings.decision_log)
            stack.callback(server.stop)
            server.wait_ready(procs.grpc_health_probe(server.address), bench.settings.load_timeout)
            first_pass(server.address, payloads, check.METHOD)  # warm, as the rows say
            found.append(Contender(name, server, check.METHOD, payloads, frames(payloads[:8])))
        bench.rows += rounds(bench, "protection", found, floor_first=False)
    servers.cleanup_decision_logs(bench.logs)


def _redis(bench: Bench, stack: contextlib.ExitStack) -> str | None:
    """A throwaway redis-server on a free loopback port (no persistence); its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = procs.free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        argv, cwd=bench.logs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    probe = procs.tcp_probe(port)
    for _ in range(100):
        with contextlib.suppress(OSError):
            if probe():
                return f"redis://127.0.0.1:{port}/0"
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)
    return None
