"""How each server under test is started: pdp serve, the empty floor, Cerbos; what pdp supports."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

from bench import procs

REPO = Path(__file__).resolve().parent.parent
PDP = REPO / ".venv" / "bin" / "pdp"


def pdp_command() -> list[str]:
    """The `pdp` executable of this checkout (falls back to `python -m pdp`)."""
    return [str(PDP)] if PDP.exists() else [sys.executable, "-m", "pdp"]


@functools.cache
def serve_help() -> str:
    """`pdp serve --help`, to see which options this tree has (workers, watch, decision log)."""
    result = subprocess.run(
        [*pdp_command(), "serve", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    return result.stdout


def supports(option: str) -> bool:
    """Whether `pdp serve` lists `option` (e.g. "--workers")."""
    return option in serve_help()


def start_pdp(
    bundle: Path,
    logs: Path,
    name: str,
    extra: list[str] | None = None,
    decision_log: bool = True,
    tree: str | None = None,
) -> procs.Server:
    """`pdp serve BUNDLE` on a free loopback port; decision log to a file in `logs`.
    `tree`: a directory holding another `pdp` package to run instead of this checkout's."""
    port = procs.free_port()
    command = [sys.executable, "-m", "pdp"] if tree else pdp_command()
    argv = [
        *command,
        "serve",
        str(bundle),
        "--listen",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    if supports("--decision-log"):
        argv += ["--decision-log", str(logs / f"{name}.decisions.jsonl") if decision_log else "off"]
    argv += extra or []
    env = {"PYTHONPATH": tree} if tree else None
    return procs.Server(name, argv, port, logs / f"{name}.log", env=env, cwd=Path(tree or REPO))


def start_empty(logs: Path, burn_us: float = 0.0) -> procs.Server:
    """The bare grpc.aio server with empty handlers (bench/empty_server.py); with `burn_us`,
    IsAuthorized spins that much CPU time first."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.empty_server", str(port)]
    argv += [f"{burn_us:g}"] if burn_us else []
    return procs.Server("empty", argv, port, logs / "empty.log", cwd=REPO)


def start_cerbos(binary: Path, config: Path, port: int, logs: Path) -> procs.Server:
    """Cerbos serving our orders policy on loopback, telemetry off."""
    argv = [str(binary), "server", f"--config={config}", "--log-level=error"]
    return procs.Server("cerbos", argv, port, logs / "cerbos.log", env={"CERBOS_NO_TELEMETRY": "1"})


def cleanup_decision_logs(logs: Path) -> None:
    """Drop decision logs once a server stopped (they grow by ~1 KB per decision)."""
    for file in logs.glob("*.decisions.jsonl"):
        file.unlink(missing_ok=True)


def start_cedar(bundle: Path, logs: Path) -> procs.Server:
    """The empty handler deciding with cedarpy alone (bench/cedar_server.py)."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.cedar_server", str(port), str(bundle)]
    return procs.Server("cedar", argv, port, logs / "cedar.log", cwd=REPO)
