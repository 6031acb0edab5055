"""Saturation with h2load (C, gRPC over h2c): several processes, one request body each."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b")
_UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6}


def available() -> bool:
    """True when h2load is on PATH (Debian's nghttp2-client)."""
    return shutil.which("h2load") is not None


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass(frozen=True, slots=True)
class H2Result:
    """Totals over all h2load processes of one run."""

    processes: int
    inflight: int
    seconds: float
    succeeded: int
    failed: int
    errored: int
    rps: float
    mean_us: float
    cpu_us_per_request: float | None
    broken: int = 0  # processes whose output could not be read (crashed, killed)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.succeeded > 0 and not (self.failed or self.errored or self.broken)


def run(
    port: int,
    path: str,
    bodies: Sequence[bytes],
    inflight: int,
    duration: float,
    cpu: Callable[[], float] | None = None,
) -> H2Result:
    """Run one h2load per body in parallel, `inflight` streams in total, for `duration` s."""
    procs = len(bodies)
    per_proc = max(1, inflight // procs)
    with tempfile.TemporaryDirectory(prefix="pdp-h2load-") as tmp:
        commands = []
        for n, body in enumerate(bodies):
            file = Path(tmp) / f"body{n}.bin"
            file.write_bytes(body)
            command = [
                "h2load",
                "-D",
                f"{round(duration * 1000)}ms",
                "-c",
                "1",
                "-m",
                str(per_proc),
            ]
            command += ["-t", "1"]
            for header in GRPC_HEADERS:
                command += ["-H", header]
            command += ["-d", str(file), f"http://127.0.0.1:{port}{path}"]
            commands.append(command)
        before = cpu() if cpu else 0.0
        running = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for c in commands
        ]
        outputs = []
        for proc in running:
            try:
                out, _ = proc.communicate(timeout=duration + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            outputs.append((proc.returncode, out))
        after = cpu() if cpu else 0.0
    return _combine(outputs, procs, per_proc * procs, duration, after - before if cpu else None)


def _combine(
    outputs: list[tuple[int, str]],
    procs: int,
    inflight: int,
    duration: float,
    cpu_seconds: float | None,
) -> H2Result:
    succeeded = failed = errored = broken = 0
    seconds = 0.0
    means: list[float] = []
    problem = ""
    for code, out in outputs:
        requests, finished = _REQUESTS.search(out), _FINISHED.search(out)
        if requests is None or finished is None:
            broken += 1
            problem = problem or f"h2load exited {code}: {' '.join(out.split())[-200:]}"
            continue
        succeeded += int(requests.group(4))
        failed += int(requests.group(5))
        errored += int(requests.group(6)) + int(requests.group(7))
        seconds = max(seconds, float(finished.group(1)) * _UNIT[finished.group(2)] / 1e6)
        mean = _MEAN.search(out)
        if mean:
            means.append(float(mean.group(1)) * _UNIT[mean.group(2)])
    if broken == len(outputs):
        raise RuntimeError(f"no h2load output could be read; {problem}")
    seconds = seconds or duration
    per_request = cpu_seconds * 1e6 / succeeded if cpu_seconds is not None and succeeded else None
    return H2Result(
        processes=procs,
        inflight=inflight,
        seconds=seconds,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        rps=succeeded / seconds,
        mean_us=sum(means) / len(means) if means else 0.0,
        cpu_us_per_request=per_request,
        broken=broken,
        problem=problem,
    )


def grpc_status_in_trailers(port: int, path: str, body: bytes) -> str | None:
    """The grpc-status trailer one POST of `body` gets, read with nghttp -v (None: unknown)."""
    if shutil.which("nghttp") is None:
        return None
    with tempfile.NamedTemporaryFile(prefix="pdp-body-", suffix=".bin") as file:
        file.write(body)
        file.flush()
        command = ["nghttp", "-v", "-H", ":method: POST"]
        for header in GRPC_HEADERS:
            command += ["-H", header]
        command += ["-d", file.name, f"http://127.0.0.1:{port}{path}"]
        try:
            out = subprocess.run(command, capture_output=True, timeout=10).stdout
        except subprocess.TimeoutExpired:
            return None
    match = re.search(rb"grpc-status: (\d+)", out)
    return match.group(1).decode() if match else None
