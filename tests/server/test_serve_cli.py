"""`pdp serve` as a process: exit codes, graceful SIGTERM/SIGINT, and a port it cannot share."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.server.bundles import write_bundle
from tests.server.helpers import ALLOW, DENY, TIMEOUT, request
from tests.support.server import REPO, ServerProcess

BIG_BATCH = 100_000  # seconds of work for the server, decided in chunks between other calls
BIG_MESSAGE = 32 * 1024 * 1024


def pdp_serve(*args: str) -> subprocess.CompletedProcess:
    """Run `pdp serve` expecting it to exit on its own (it is killed if it keeps serving)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "pdp", "serve", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"pdp serve {' '.join(args)} kept running instead of exiting:\n{stderr}")


def test_an_invalid_bundle_exits_3_with_its_problems(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", {"p.cedar": "permit(principal, action, resource\n"})
    served = pdp_serve(str(bundle), "--listen", "127.0.0.1:0")
    assert served.returncode == 3
    assert "p.cedar:1:1: invalid policy: " in served.stderr
    assert f"error: bundle {bundle} does not load (1 problem(s))" in served.stderr
    assert "listening" not in served.stderr


def test_a_missing_directory_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    served = pdp_serve(str(missing), "--listen", "127.0.0.1:0")
    assert served.returncode == 3
    assert f"{missing}: bundle directory does not exist" in served.stderr


def test_a_busy_port_is_not_shared(plain_server: ServerProcess, plain_dir: Path) -> None:
    """grpc enables SO_REUSEPORT by default; pdp turns it off, so the second server must fail."""
    address = plain_server.address
    assert address is not None
    second = pdp_serve(str(plain_dir), "--listen", address)
    assert second.returncode == 1, second.stderr
    assert f"error: cannot listen on {address}: address in use or not available" in second.stderr
    assert "Traceback" not in second.stderr
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AuthorizerStub(channel)
        assert stub.IsAuthorized(request(), timeout=TIMEOUT).decision == ALLOW


def test_a_busy_unix_socket_is_not_taken_over(plain_dir: Path, tmp_path: Path) -> None:
    """grpc would unlink a live server's socket file and bind anew; pdp refuses instead."""
    listen = f"unix:{tmp_path}/pdp.sock"
    with ServerProcess(plain_dir, listen=listen) as first:
        second = pdp_serve(str(plain_dir), "--listen", listen)
        assert second.returncode == 1, second.stderr
        assert f"error: cannot listen on {listen}: another server is listening there" in (
            second.stderr
        )
        with grpc.insecure_channel(listen) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            assert stub.IsAuthorized(request(), timeout=TIMEOUT).decision == ALLOW
        assert first.stop() == 0


def test_sigint_stops_cleanly(plain_dir: Path) -> None:
    with ServerProcess(plain_dir) as server:
        assert server.stop(signal.SIGINT) == 0
    assert '"stopped"' in server.stderr


def _wait_until_in_flight(pending: grpc.Future) -> None:
    """Give the server time to receive the batch and start on it; it must still be running."""
    time.sleep(1.0)
    assert not pending.done(), "the batch finished before SIGTERM; make it bigger"


def test_sigterm_lets_an_in_flight_call_finish(plain_dir: Path) -> None:
    limits = ("--max-batch", str(BIG_BATCH), "--max-message-bytes", str(BIG_MESSAGE))
    limits += ("--eval-timeout", "0")  # the batch takes seconds on purpose, more when loaded
    with ServerProcess(plain_dir, *limits) as server:
        assert server.address is not None and server.process is not None
        options = [("grpc.max_receive_message_length", BIG_MESSAGE)]
        with grpc.insecure_channel(server.address, options=options) as channel:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
            stub = pb_grpc.AuthorizerStub(channel)
            items = [request(f"User::u{i}", context_json='{"risk": 1}') for i in range(BIG_BATCH)]
            message = pb.BatchIsAuthorizedRequest(requests=items)
            pending = stub.BatchIsAuthorized.future(message, timeout=120)
            _wait_until_in_flight(pending)
            server.process.send_signal(signal.SIGTERM)
            results = pending.result(timeout=120).results
        assert len(results) == BIG_BATCH
        assert {r.decision for r in results} == {DENY}
        assert server.process.wait(timeout=30) == 0
    assert '"stopping"' in server.stderr and '"stopped"' in server.stderr
