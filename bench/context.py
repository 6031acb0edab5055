"""One benchmark run: settings from the environment, scratch dirs, rows, servers kept up."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import h2load, procs
from bench.report import Row

IS_AUTHORIZED = "/pdp.v1.Authorizer/IsAuthorized"
BATCH = "/pdp.v1.Authorizer/BatchIsAuthorized"
GET_STATUS = "/pdp.v1.Authorizer/GetStatus"
SECTIONS = (
    "floor",
    "plan",
    "peer",
    "pdp",
    "workers",
    "protection",
    "shadow",
    "cache",
    "policies",
    "entities",
    "reload",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and what to measure."""

    quick: bool
    peers: bool
    duration: float  # seconds per point of the 1/8/32 in-flight rows
    round_duration: float  # seconds per measurement inside an interleaved round
    rounds: int  # interleaved rounds behind the targets and sweeps (medians are reported)
    warmup: float
    budget: float  # seconds for the whole run; later sections are skipped past it
    load_timeout: float  # seconds a sweep server may take to load its bundle
    decision_log: bool
    h2load_procs: int
    only: tuple[str, ...]

    @classmethod
    def from_env(cls, argv: Sequence[str]) -> Settings:
        """BENCH_QUICK, BENCH_PEERS (or --peers), BENCH_DURATION, BENCH_ONLY, BENCH_DECISION_LOG."""
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        peers = "--peers" in argv or os.environ.get("BENCH_PEERS", "") not in ("", "0")
        duration = float(os.environ.get("BENCH_DURATION", "1" if quick else "3"))
        only = tuple(s for s in os.environ.get("BENCH_ONLY", "").split(",") if s) or SECTIONS
        return cls(
            quick=quick,
            peers=peers,
            duration=duration,
            round_duration=0.5 if quick else 1.0,
            rounds=1 if quick else 3,
            warmup=0.2 if quick else 0.4,
            budget=240.0 if quick else 420.0,
            load_timeout=20.0 if quick else 60.0,
            decision_log=os.environ.get("BENCH_DECISION_LOG", "1") not in ("0", "off"),
            h2load_procs=8,
            only=only,
        )


class Bench:
    """One run: settings, scratch directories, rows measured so far, the clock."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.bundles = work / "bundles"  # apart from logs: pdp's watcher watches the parent
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.started = time.monotonic()
        self.h2load = h2load.available()
        self.kept = contextlib.ExitStack()  # servers that stay up across sections
        self.shared: dict[str, Any] = {}  # what later sections reuse (floor, peer contenders)

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def remaining(self) -> float:
        return self.settings.budget - (time.monotonic() - self.started)

    def wants(self, section: str) -> bool:
        return section in self.settings.only

    def skip(self, group: str, name: str, why: str) -> None:
        self.log(f"skip {group} {name}: {why}")
        self.rows.append(Row(group, name, note=f"n/a: {why}"))

    def keep(self, server: procs.Server) -> procs.Server:
        """Keep `server` up until the end of the run."""
        self.kept.callback(server.stop)
        return server
