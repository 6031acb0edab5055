"""`make bench`: floors, pdp serve, the Cerbos peer and the sweeps in one run; one table.

Environment: BENCH_QUICK=1 (short, for development), BENCH_PEERS=1 (Cerbos too),
BENCH_DURATION=S (seconds per 1/8/32 point), BENCH_ONLY=floor,plan,peer,pdp,workers,
policies,entities,reload (sections), BENCH_DECISION_LOG=0 (pdp serve without its decision log).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import grpc

from bench import (
    bundles,
    cachelog,
    cerbos,
    check,
    client,
    inproc,
    plans,
    procs,
    protection,
    report,
    servers,
    shadow,
    summary,
)
from bench.context import BATCH, GET_STATUS, IS_AUTHORIZED, Bench, Settings
from bench.measure import Contender, frames, points, rounds, verify_bodies
from bench.mix import Call, distinct_pairs, orders_mix
from bench.report import Row
from bench.sweeps import (
    COLD,
    section_entities,
    section_policies,
    section_reload,
    section_workers,
    start_sweep,
)
from pdp.v1 import authorizer_pb2 as pb

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
BATCH_SIZE = 10


# --- the main bundle and its mix --------------------------------------------------------


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


def pick_bodies(calls: list[Call], n: int) -> list[Call]:
    """n calls for h2load: half allowed, half denied, most carry entities, all Cerbos-mappable."""
    candidates = [c for c in calls if cerbos.mappable(c)]
    chosen: list[Call] = []
    for allowed in (True, False):
        side = [c for c in candidates if c.expect is allowed]
        carried = [c for c in side if c.entities]
        bare = [c for c in side if not c.entities]
        chosen += bare[:1] + carried[: n // 2 - min(1, len(bare))]
    chosen += [c for c in candidates if c not in chosen][: max(0, n - len(chosen))]
    return chosen[:n]


def _rpc_probe(address: str) -> Callable[[], bool]:
    def probe() -> bool:
        with grpc.insecure_channel(address) as channel:
            channel.unary_unary(GET_STATUS)(b"", timeout=1.0)
        return True

    return probe


def _pdp_probe(server: procs.Server) -> Callable[[], bool]:
    return procs.grpc_health_probe(server.address)


# --- floors -------------------------------------------------------------------------------


def section_floor(bench: Bench, bundle: Path, calls: list[Call], bodies_calls: list[Call]) -> None:
    result = inproc.measure(bundle, calls, bench.settings.duration)
    bench.rows.append(
        Row(
            "floor",
            "cedarpy in-process (same bundle)",
            "-",
            result.p50_us,
            result.p99_us,
            result.rps,
            1e6 / result.rps if result.rps else None,
            note=f"{result.count} decisions, {result.allowed} allowed, {result.errors} errors; "
            "1 thread, request entities merged with with_added_json_str",
            raw={"inproc": asdict(result)},
        )
    )
    bench.log(f"floor cedarpy in-process: p50 {result.p50_us:.1f} µs, {result.rps:,.0f} dec/s")
    server = bench.keep(servers.start_empty(bench.logs))
    server.wait_ready(_rpc_probe(server.address), 30)
    floor = Contender(
        summary.FLOOR,
        server,
        IS_AUTHORIZED,
        [c.proto().SerializeToString() for c in calls],
        frames([c.proto().SerializeToString() for c in bodies_calls]),
    )
    verify_bodies(floor)
    bench.shared["floor"] = floor
    bench.rows += points(bench, floor, "floor")


# --- query plans --------------------------------------------------------------------------


def section_plan(bench: Bench, bundle: Path) -> None:
    """One line: PlanResources' engine cost on the example bundle vs one IsAuthorized's."""
    result = plans.measure(bundle, min(2.0, bench.settings.duration))
    ratio = result.plan_p50_us / result.decide_p50_us if result.decide_p50_us else 0.0
    bench.rows.append(
        Row(
            "plan",
            "PlanResources in-process (listOrders over Order)",
            "-",
            result.plan_p50_us,
            result.plan_p99_us,
            note=f"{ratio:.1f}x one IsAuthorized in-process ({result.decide_p50_us:,.0f} µs "
            f"p50); {result.plans} plans over customer, support and admin",
            raw={"plan": asdict(result)},
        )
    )
    bench.log(f"plan: p50 {result.plan_p50_us:.0f} µs, {ratio:.1f}x IsAuthorized")


# --- the peer -----------------------------------------------------------------------------


def section_peer(bench: Bench, calls: list[Call], bodies_calls: list[Call]) -> None:
    if not bench.settings.peers:
        bench.skip("peer", "Cerbos", "run `make bench-peers` (or BENCH_PEERS=1)")
        return
    binary = cerbos.ensure_installed(bench.log)
    root = bench.work / "cerbos"
    grpc_port, http_port = procs.free_port(), procs.free_port()
    config = cerbos.write_config(root, grpc_port, http_port)
    cerbos.compile_policies(binary, root)
    messages = cerbos.load_messages(root / "gen")
    server = bench.keep(servers.start_cerbos(binary, config, grpc_port, bench.logs))
    server.wait_ready(procs.tcp_probe(grpc_port), 30)
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
        f"Cerbos {cerbos.VERSION}: {len(mapped)} requests of the mix (users on orders and users, "
        f"attributes in the request), {distinct_pairs(mapped)} distinct pairs; {differ} "
        "decisions differ from the model pdp is checked against"
    )
    peer = Contender(
        f"Cerbos {cerbos.VERSION} CheckResources",
        server,
        cerbos.METHOD,
        payloads,
        frames([cerbos.request_bytes(messages, c) for c in bodies_calls]),
    )
    verify_bodies(peer)
    bench.shared["peer"] = peer
    bench.rows += points(bench, peer, "peer")


# --- pdp serve on the example bundle ------------------------------------------------------


def section_pdp(
    bench: Bench,
    bundle: Path,
    signer: check.Signer | None,
    calls: list[Call],
    bodies_calls: list[Call],
) -> None:
    server = servers.start_pdp(bundle, bench.logs, "pdp-main", None, bench.settings.decision_log)
    try:
        with procs.running(server, _pdp_probe(server), 60):
            single = Contender(
                summary.PDP,
                server,
                IS_AUTHORIZED,
                [c.proto().SerializeToString() for c in calls],
                frames([c.proto().SerializeToString() for c in bodies_calls]),
            )
            bench.notes.append("pdp: " + verify_decisions(server.address, calls, single.payloads))
            bench.notes.append("pdp: " + verify_bodies(single))
            bench.rows += points(bench, single, "pdp")
            _pdp_batch(bench, server, calls)
            checked = None
            if signer is None:
                bench.skip("pdp", summary.CHECK, "no Check service or JWT issuer in this tree")
            else:
                checked = _pdp_check(bench, server, signer)
            with contextlib.ExitStack() as stack:
                multi = cold = None
                if servers.supports("--workers"):  # Cerbos uses every core: so may pdp
                    extra = ["--workers", "2"]
                    multi = start_sweep(
                        bench,
                        stack,
                        "versus",
                        summary.PDP_W2,
                        bundle,
                        calls,
                        extra,
                        bodies_calls=bodies_calls,
                    )
                if servers.supports("--decision-cache-size"):  # every request decided
                    cold = start_sweep(
                        bench,
                        stack,
                        "versus",
                        summary.PDP_COLD,
                        bundle,
                        calls,
                        COLD,
                        bodies_calls=bodies_calls,
                    )
                floor = bench.shared.get("floor")
                versus = [floor, single, cold, multi, checked, bench.shared.get("peer")]
                found = [c for c in versus if c is not None]
                bench.rows += rounds(bench, "versus", found, floor_first=floor is not None)
    finally:
        servers.cleanup_decision_logs(bench.logs)


def _pdp_batch(bench: Bench, server: procs.Server, calls: list[Call]) -> None:
    groups = [calls[i : i + BATCH_SIZE] for i in range(0, len(calls) - BATCH_SIZE + 1, BATCH_SIZE)]
    payloads = [
        pb.BatchIsAuthorizedRequest(requests=[c.proto() for c in group]).SerializeToString()
        for group in groups
    ]
    batch = Contender(
        f"pdp BatchIsAuthorized warm ({BATCH_SIZE}/call)",
        server,
        BATCH,
        payloads,
        frames(payloads[: bench.settings.h2load_procs]),
    )
    verify_bodies(batch)
    bench.rows += points(bench, batch, "pdp", per_call=BATCH_SIZE)


def _pdp_check(bench: Bench, server: procs.Server, signer: check.Signer) -> Contender:
    calls = check.check_mix(signer)
    payloads = [check.check_request(c) for c in calls]
    bench.notes.append("pdp Check: " + verify_check(server.address, payloads, calls))
    checked = Contender(
        summary.CHECK,
        server,
        check.METHOD,
        payloads,
        frames(payloads[: bench.settings.h2load_procs]),
    )
    verify_bodies(checked)
    bench.rows += points(bench, checked, "pdp")
    return checked


def verify_decisions(address: str, calls: list[Call], payloads: list[bytes]) -> str:
    """Every request of the mix answered, decisions compared with the orders model."""
    answers = client.call_each(address, IS_AUTHORIZED, payloads)
    errors = [a for a in answers if isinstance(a, str)]
    mismatched = allowed = 0
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
    return text + (f" (first error: {errors[0][:160]})" if errors else "")


def verify_check(address: str, payloads: list[bytes], calls: list[check.CheckCall]) -> str:
    """Check answers a decision for every token (never 401: our tokens must verify). Every
    request of the mix is sent once, so the rows measured after it are warm, as labelled."""
    codes: dict[int, int] = {}
    for answer in client.call_each(address, check.METHOD, payloads):
        if isinstance(answer, str):
            raise RuntimeError(f"Check RPC failed: {answer}")
        code = check.check_status(answer)
        codes[code] = codes.get(code, 0) + 1
    if codes.get(16):
        raise RuntimeError(f"Check said UNAUTHENTICATED to {codes[16]} of our tokens")
    return (
        f"{len(calls)} requests, {len({(c.sub, c.path) for c in calls})} distinct token/route "
        f"pairs, {len({c.sub for c in calls})} tokens; {codes.get(0, 0)} OK, "
        f"{codes.get(7, 0)} PERMISSION_DENIED"
    )


# --- sweeps: several pdp serve side by side, measured in interleaved rounds ---------------


# --- reload -------------------------------------------------------------------------------


# --- main ---------------------------------------------------------------------------------


def run(settings: Settings) -> int:
    """Measure every wanted section within the budget, then print the table and write JSON."""
    procs.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="pdp-bench-") as tmp:
        bench = Bench(settings, Path(tmp))
        if not bench.h2load:
            bench.notes.append("h2load missing: decisions/s from the Python client only")
        bundle, signer, bundle_note = main_bundle(bench)
        calls = orders_mix()
        bodies_calls = pick_bodies(calls, settings.h2load_procs)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("floor", lambda: section_floor(bench, bundle, calls, bodies_calls)),
            ("plan", lambda: section_plan(bench, bundle)),
            ("peer", lambda: section_peer(bench, calls, bodies_calls)),
            ("pdp", lambda: section_pdp(bench, bundle, signer, calls, bodies_calls)),
            ("workers", lambda: section_workers(bench, bundle, calls)),
            ("protection", lambda: protection.section_protection(bench, bundle, signer)),
            ("shadow", lambda: shadow.section_shadow(bench, bundle, calls)),
            ("cache", lambda: cachelog.section_cache(bench, bundle, calls, bodies_calls)),
            ("policies", lambda: section_policies(bench)),
            ("entities", lambda: section_entities(bench)),
            ("reload", lambda: section_reload(bench, bundle, calls)),
        ]
        with bench.kept:
            for section, step in steps:
                if not bench.wants(section):
                    continue
                if bench.remaining() < 15:
                    bench.skip(section, section, "time budget spent")
                    continue
                try:
                    step()
                except Exception as exc:  # one broken section must not sink the whole run
                    bench.log(f"{section} failed: {type(exc).__name__}: {exc}")
                    bench.rows.append(Row(section, f"{section} failed", note=f"error: {exc}"))
        rows = summary.order(bench.rows)
        summary.add_ratios(rows)
        found = summary.targets(rows)
        meta = {
            "settings": asdict(settings),
            "finished": datetime.now(UTC).isoformat(),
            "seconds": time.monotonic() - bench.started,
            "notes": bench.notes,
            "bundle": bundle_note,
            "tree": summary.tree(),
        }
        print(report.render(rows, found, summary.header(settings, bundle_note, bench.notes)))
        report.write_json(RESULTS, rows, found, meta)
        bench.log(f"done in {time.monotonic() - bench.started:.0f} s; wrote {RESULTS}")
    return 0


def main() -> int:
    return run(Settings.from_env(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
