"""`python -m bench.http`: HTTP server candidates for `--http-listen`, measured with wrk.

Each candidate (bench/http_candidates.py) serves the same HttpEdge next to a gRPC server
on one event loop, in its own process; wrk (Debian's package, HTTP/1.1, loopback, one
thread, keep-alive connections) drives `POST /v1/is_authorized` and `GET /forward-auth`
(a real ES256 JWT, the example bundle's owner-reads-own-order allow). Reported: requests
per second, latency percentiles, and the server process's CPU time per request (user +
system, from /proc). Every answer is checked first (an allow), and a run with any non-2xx
answer is refused. Results: bench/results/http.json. BENCH_DURATION=S (default 8) per run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "http.json"
BUNDLE = REPO / "policies"
KEY = REPO / "tests" / "fixtures" / "keys" / "orders-es256.pem"
CANDIDATES = ("pdp", "aiohttp", "uvicorn", "granian")
CONNECTIONS = (1, 16)
_TICKS = os.sysconf("SC_CLK_TCK")

IS_AUTHORIZED_BODY = json.dumps(
    {
        "principal": {"type": "User", "id": "42"},
        "action": {"type": "Action", "id": "readOrder"},
        "resource": {"type": "Order", "id": "o-1001"},
    }
)


def _token() -> str:
    import jwt

    now = int(time.time())
    claims = {
        "iss": "https://auth.shop.example/",
        "aud": "orders-api",
        "sub": "42",
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, KEY.read_text(), algorithm="ES256", headers={"kid": "orders-2026-01"})


def _scripts(folder: Path, token: str) -> dict[str, tuple[str, Path]]:
    post = folder / "is_authorized.lua"
    post.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(IS_AUTHORIZED_BODY)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    forward = folder / "forward_auth.lua"
    forward.write_text(
        'wrk.headers["X-Original-URI"] = "/api/orders/o-1001"\n'
        'wrk.headers["X-Original-Method"] = "GET"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    return {
        "/v1/is_authorized": ("/v1/is_authorized", post),
        "/forward-auth": ("/forward-auth", forward),
    }


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _check(port: int, token: str) -> None:
    """Both routes answer an allow before anything is measured."""
    base = f"http://127.0.0.1:{port}"
    request = urllib.request.Request(
        f"{base}/v1/is_authorized",
        data=IS_AUTHORIZED_BODY.encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["decision"] == "DECISION_ALLOW"
    request = urllib.request.Request(
        f"{base}/forward-auth",
        headers={
            "x-original-uri": "/api/orders/o-1001",
            "x-original-method": "GET",
            "authorization": f"Bearer {token}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and answer.headers["x-pdp-principal"] == 'User::"42"'


def _wrk(port: int, path: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
        f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failures:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    found = {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
    }
    for label in ("50", "99"):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if match:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]
            found[f"p{label}_ms"] = round(float(match.group(1)) * scale, 3)
    return found


def measure(name: str, seconds: float, folder: Path, token: str) -> list[dict[str, Any]]:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.http_candidates", name, str(port), str(BUNDLE)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    rows = []
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{name} did not start")
        _check(port, token)
        for route, (path, script) in _scripts(folder, token).items():
            _wrk(port, path, script, 16, min(2.0, seconds))  # warm-up
            for connections in CONNECTIONS:
                before = _cpu(child.pid)
                found = _wrk(port, path, script, connections, seconds)
                used = _cpu(child.pid) - before
                found.update(
                    server=name,
                    route=route,
                    connections=connections,
                    cpu_us_per_request=round(used / found["requests"] * 1e6, 1),
                )
                rows.append(found)
                print(json.dumps(found), flush=True)
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    return rows


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 1
    seconds = float(os.environ.get("BENCH_DURATION", "8"))
    token = _token()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in os.environ.get("BENCH_HTTP", ",".join(CANDIDATES)).split(","):
            rows += measure(name, seconds, Path(folder), token)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"duration_s": seconds, "rows": rows}, indent=2) + "\n")
    print("| server | route | conns | req/s | p50 ms | p99 ms | CPU us/req |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['server']} | {row['route']} | {row['connections']} | {row['rps']:.0f} | "
            f"{row.get('p50_ms', '')} | {row.get('p99_ms', '')} | {row['cpu_us_per_request']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
