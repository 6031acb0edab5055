"""Profile servers under the bench's load: h2load at 32 in flight with the mix's 8 bodies,
server CPU per request from /proc (per thread too), optionally py-spy or perf meanwhile.

    python -m bench.profile compare [--rounds N] [--seconds S] SERVER...
    python -m bench.profile record [--seconds S] [--py-spy OUT | --perf OUT] SERVER

A SERVER is `empty` (bench/empty_server.py), `burn:US` (the empty handler spinning US µs of
CPU per call), `cedar` (bench/cedar_server.py: the empty handler deciding with cedarpy
alone) or `pdp[@DIR][:ARG,ARG...]`: `pdp serve` (of the checkout at DIR, e.g. an older
commit's `pdp/` from `git archive`, when given) on a copy of the
example bundle with its decision log to a file, plus ARGs (e.g. `pdp:--decision-cache-size,0`
or `pdp:--decision-cache-size,0,--decision-log,off`). `compare` starts them all and measures
them in interleaved rounds (the machine is shared and noisy: read the ratios, not the
figures); `record` profiles one (py-spy: `--native`, `--idle`, `--gil`, `--rate`).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import bundles, h2load, procs, servers
from bench.context import IS_AUTHORIZED
from bench.measure import frames
from bench.mix import orders_mix
from bench.run import pick_bodies

Threads = dict[str, tuple[str, float]]  # tid -> (thread name, CPU seconds)


@dataclass
class Subject:
    """One server under test and what was measured of it."""

    spec: str
    server: procs.Server
    cpu: list[float] = field(default_factory=list)  # µs per request, one per round
    rps: list[float] = field(default_factory=list)
    threads: list[dict[str, float]] = field(default_factory=list)  # role -> µs per request
    names: dict[str, str] = field(default_factory=dict)  # tid -> Python thread name


def start(spec: str, work: Path) -> procs.Server:
    """Start the server a SERVER spec names (not yet ready)."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    bundle = work / "bundles" / "orders"
    if not bundle.exists():
        bundles.copy_bundle(servers.REPO / "policies", bundle)
    if spec == "empty":
        return servers.start_empty(logs)
    if spec == "cedar":
        return servers.start_cedar(bundle, logs)
    if spec.startswith("burn:"):  # the empty handler spinning N µs of CPU per call
        return servers.start_empty(logs, float(spec.removeprefix("burn:")))
    name, _, args = spec.partition(":")
    name, _, tree = name.partition("@")  # pdp@DIR: the pdp package of another checkout
    if name != "pdp":
        raise SystemExit(f"unknown server {spec!r}: empty, burn:US, cedar or pdp[@DIR][:ARG,...]")
    extra = [a for a in args.split(",") if a]
    slug = f"pdp-{abs(hash(spec)) % 10_000}"
    # start_pdp's own --decision-log comes first: a later `--decision-log,off` wins
    server = servers.start_pdp(bundle, logs, slug, extra, True, tree or None)
    return server


def thread_cpu(pid: int) -> Threads:
    """Per thread of `pid`: its name and CPU seconds so far (user + system, from /proc)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            text = (task / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            out[task.name] = (name, (int(fields[11]) + int(fields[12])) / procs._CLOCK_TICKS)
    return out


def python_names(pid: int) -> dict[str, str]:
    """OS thread id -> Python thread name, from `py-spy dump` ({} without py-spy)."""
    try:
        out = subprocess.run(
            [_tool("py-spy"), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', out, re.M))


def by_role(
    before: Threads, after: Threads, requests: int, main: str, names: dict[str, str]
) -> dict[str, float]:
    """µs per request by thread role: the main thread (the event loop), grpc's C-core threads,
    grpc.aio's poller thread, the decision log writer, the rest."""
    roles: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        spent = seconds - before.get(tid, (name, 0.0))[1]
        python = names.get(tid, "")
        if tid == main:
            role = "main"
        elif "_poll_wrapper" in python:
            role = "poller"
        elif python == "pdp-decision-log":
            role = "log writer"
        elif not python:
            role = "grpc core"  # event_engine, timers: threads Python does not know
        else:
            role = "other python"
        roles[role] = roles.get(role, 0.0) + spent * 1e6 / max(1, requests)
    return roles


def measure(subject: Subject, bodies: list[bytes], seconds: float, inflight: int) -> None:
    pid = subject.server.pid
    before = thread_cpu(pid)
    result = h2load.run(subject.server.port, IS_AUTHORIZED, bodies, inflight, seconds)
    after = thread_cpu(pid)
    requests = result.succeeded
    total = sum(s for _, s in after.values()) - sum(s for _, s in before.values())
    subject.cpu.append(total * 1e6 / max(1, requests))
    subject.rps.append(result.rps)
    if not subject.names:
        subject.names = python_names(pid)
    subject.threads.append(by_role(before, after, requests, str(pid), subject.names))
    if not result.ok:
        print(f"  {subject.spec}: h2load {result.failed} failed {result.problem}", file=sys.stderr)


def compare(args: argparse.Namespace, bodies: list[bytes], work: Path) -> None:
    subjects = [Subject(spec, start(spec, work)) for spec in args.servers]
    with contextlib.ExitStack() as stack:
        for subject in subjects:
            stack.callback(subject.server.stop)
            subject.server.wait_ready(procs.tcp_probe(subject.server.port), 60)
        for subject in subjects:  # warm: slices, caches, the first pass of everything
            h2load.run(subject.server.port, IS_AUTHORIZED, bodies, args.inflight, 1.0)
        for n in range(args.rounds):
            order = subjects[n % len(subjects) :] + subjects[: n % len(subjects)]
            for subject in order:
                measure(subject, bodies, args.seconds, args.inflight)
            print(f"round {n + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    first = statistics.median(subjects[0].cpu)
    print(
        f"{'server':52} {'req/s':>7} {'CPU µs/req':>10} {'x first':>7}  by thread (median µs/req)"
    )
    for subject in subjects:
        cpu = statistics.median(subject.cpu)
        roles = sorted({r for t in subject.threads for r in t})
        parts = []
        for role in sorted(
            roles, key=lambda r: -statistics.median(t.get(r, 0) for t in subject.threads)
        ):
            value = statistics.median(t.get(role, 0.0) for t in subject.threads)
            if value >= 1.0:
                parts.append(f"{role} {value:.0f}")
        print(
            f"{subject.spec:52} {statistics.median(subject.rps):7,.0f} {cpu:10,.1f} "
            f"{cpu / first:6.2f}x  {', '.join(parts)}"
        )
        print(f"{'':52} rounds: {', '.join(f'{c:.0f}' for c in subject.cpu)}")


def record(args: argparse.Namespace, bodies: list[bytes], work: Path) -> None:
    subject = Subject(args.servers[0], start(args.servers[0], work))
    with procs.running(subject.server, procs.tcp_probe(subject.server.port), 60):
        h2load.run(subject.server.port, IS_AUTHORIZED, bodies, args.inflight, 1.0)
        pid = str(subject.server.pid)
        if args.pyspy:
            command = [_tool("py-spy"), "record", "--threads", "--rate", str(args.rate)]
            command += ["--format", args.format, "--output", args.pyspy]
            command += ["--duration", str(round(args.seconds)), "--pid", pid]
            command += [f"--{flag}" for flag in ("native", "idle", "gil") if getattr(args, flag)]
        elif args.perf:
            command = ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-o", args.perf]
            command += ["-p", pid, "--", "sleep", str(args.seconds)]
        else:
            command = []
        spy = (
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if command
            else None
        )
        measure(subject, bodies, args.seconds, args.inflight)
        if spy is not None:
            out, _ = spy.communicate(timeout=120)
            print("\n".join(out.decode(errors="replace").splitlines()[-2:]))
    threads = ", ".join(f"{r} {v:.0f}" for r, v in subject.threads[0].items() if v >= 1)
    print(
        f"{subject.spec}: {subject.rps[0]:,.0f} req/s, {subject.cpu[0]:,.1f} µs CPU/req ({threads})"
    )


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("mode", choices=("compare", "record"))
    parser.add_argument("servers", nargs="+", help="empty, cedar or pdp[:ARG,ARG...]")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--py-spy", dest="pyspy", default=None, help="py-spy output file")
    parser.add_argument("--format", default="raw", help="py-spy format: raw, speedscope, ...")
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--gil", action="store_true")
    parser.add_argument("--perf", default=None, help="perf record (cpu-clock) output file")
    args = parser.parse_args(argv)
    procs.install_cleanup()
    bodies = frames([c.proto().SerializeToString() for c in pick_bodies(orders_mix(), 8)])
    with tempfile.TemporaryDirectory(prefix="pdp-profile-") as tmp:
        (compare if args.mode == "compare" else record)(args, bodies, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
