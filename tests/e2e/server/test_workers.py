"""`pdp serve --workers N`: several processes share one port, are supervised, and stop cleanly."""

from __future__ import annotations

import os
import signal
import urllib.request

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

pytestmark = pytest.mark.xdist_group("workers")

READ_OWN_ORDER = pb.IsAuthorizedRequest(
    principal=pb.EntityUid(type="User", id="42"),
    action=pb.EntityUid(type="Action", id="readOrder"),
    resource=pb.EntityUid(type="Order", id="o-1001"),
)


def _pids(address: str, connections: int) -> set[int]:
    """The worker pids that answer GetStatus over `connections` separate connections."""
    pids = set()
    for n in range(connections):
        # A distinct channel argument forces a new connection (and source port) each time.
        options = [("grpc.primary_user_agent", f"pdp-test-{n}")]
        with grpc.insecure_channel(address, options=options) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            pids.add(stub.GetStatus(pb.GetStatusRequest(), timeout=10).pid)
    return pids


def _listening_count(server: ServerProcess) -> int:
    return sum('"listening"' in line and "pdp.server" in line for line in server.stderr_lines)


@pytest.fixture
def two_workers(unused_tcp_port_metrics: int):
    server = ServerProcess(
        EXAMPLE_BUNDLE,
        "--workers",
        "2",
        "--metrics",
        f"127.0.0.1:{unused_tcp_port_metrics}",
        "--decision-log",
        "off",
    )
    server.start(timeout=90)
    try:
        wait_for(lambda: _listening_count(server) == 2, 60, "2 workers listening")
        yield server
    finally:
        server.stop()


@pytest.fixture
def unused_tcp_port_metrics() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_share_the_port_and_metrics_add_up(
    two_workers: ServerProcess, unused_tcp_port_metrics: int
) -> None:
    assert two_workers.address is not None
    pids = _pids(two_workers.address, 40)
    assert len(pids) == 2
    assert two_workers.process is not None and two_workers.process.pid not in pids

    for n in range(20):
        with grpc.insecure_channel(
            two_workers.address, options=[("grpc.primary_user_agent", f"d{n}")]
        ) as channel:
            response = pb_grpc.AuthorizerStub(channel).IsAuthorized(READ_OWN_ORDER, timeout=10)
            assert response.decision == pb.DECISION_ALLOW
    url = f"http://127.0.0.1:{unused_tcp_port_metrics}/metrics"
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    line = next(
        line
        for line in body.splitlines()
        if line.startswith('pdp_decisions_total{api="IsAuthorized",decision="allow"}')
    )
    assert float(line.split()[-1]) == 20.0


def test_a_killed_worker_is_replaced_and_sigterm_stops_all(two_workers: ServerProcess) -> None:
    assert two_workers.address is not None
    before = _pids(two_workers.address, 40)
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: _listening_count(two_workers) == 3, 60, "3 workers listening")
    after = _pids(two_workers.address, 40)
    assert victim not in after and len(after) == 2
    assert '"worker_exited"' in two_workers.stderr

    assert two_workers.stop(signal.SIGTERM) == 0, two_workers.stderr
    for pid in after:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"
    except OSError:
        return True


def test_workers_refuse_a_unix_socket(tmp_path) -> None:
    server = ServerProcess(EXAMPLE_BUNDLE, "--workers", "2", listen=f"unix:{tmp_path}/pdp.sock")
    with pytest.raises(RuntimeError, match="--workers needs a TCP"):
        server.start(timeout=30)
    assert server.process is not None and server.process.returncode == 2


def test_workers_fail_fast_on_an_invalid_bundle(tmp_path) -> None:
    (tmp_path / "bad.cedar").write_text("permit (principal, action, resource) when { 1 + };")
    server = ServerProcess(tmp_path, "--workers", "2")
    with pytest.raises(RuntimeError, match=r"bad\.cedar:1"):
        server.start(timeout=30)
    assert server.process is not None and server.process.returncode == 3
    assert "worker_started" not in server.stderr
