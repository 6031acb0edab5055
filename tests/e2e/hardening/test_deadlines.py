"""Evaluation time limits through a real server: `--eval-timeout` cuts a batch off, and a call
whose deadline passed while it waited is never decided (nor logged)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.hardening import TIMEOUT, assert_alive_and_serving
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

DENY = pb.DECISION_DENY


def heavy_bundle(root: Path) -> Path:
    """400 policies on `read` that all evaluate (and fail) for every request: slow on purpose."""
    root.mkdir(parents=True, exist_ok=True)
    policies = "".join(
        f'@id("p{i}")\npermit (principal, action == Action::"read", resource)\n'
        f'when {{ context has n && context.n == {i} && principal.name like "*a*b*c*{i}" }};\n'
        for i in range(400)
    )
    (root / "policies.cedar").write_text(policies)
    return root


def test_a_batch_past_the_evaluation_limit_is_cut_off(tmp_path: Path) -> None:
    bundle = heavy_bundle(tmp_path / "heavy")
    items = [
        pb.IsAuthorizedRequest(
            principal=pb.EntityUid(type="User", id=f"u{i}"),
            action=pb.EntityUid(type="Action", id="read"),
            resource=pb.EntityUid(type="Doc", id="d"),
            context_json='{"n": 9999}',
        )
        for i in range(1000)
    ]
    flags = ("--eval-timeout", "0.2", "--decision-log", "off")
    with ServerProcess(bundle, *flags) as server:
        assert server.address is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                stub.BatchIsAuthorized(pb.BatchIsAuthorizedRequest(requests=items), timeout=30)
            elapsed = time.monotonic() - started
            small = pb.BatchIsAuthorizedRequest(requests=items[:5])
            assert len(stub.BatchIsAuthorized(small, timeout=TIMEOUT).results) == 5
        assert_alive_and_serving(server)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "--eval-timeout" in caught.value.details()
    assert " of 1000 items decided" in caught.value.details()
    assert elapsed < 3.0  # the whole batch takes several seconds


def test_a_call_whose_deadline_passed_in_the_queue_is_never_decided(tmp_path: Path) -> None:
    bundle = heavy_bundle(tmp_path / "heavy")
    busy = pb.BatchIsAuthorizedRequest(
        requests=[
            pb.IsAuthorizedRequest(
                principal=pb.EntityUid(type="User", id=f"busy-{i}"),
                action=pb.EntityUid(type="Action", id="read"),
                resource=pb.EntityUid(type="Doc", id="d"),
                context_json=f'{{"n": {1000 + i}}}',
            )
            for i in range(600)
        ]
    )
    with ServerProcess(bundle, "--eval-timeout", "0") as server:
        assert server.address is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            worker = threading.Thread(
                target=lambda: stub.BatchIsAuthorized(busy, timeout=30), daemon=True
            )
            worker.start()
            # The batch now holds the loop, a chunk (~0.4 s) at a time: no event says so, and
            # the check `expired` below fails if none of the late calls met it.
            time.sleep(0.2)
            codes = []
            for index in range(5):
                late = pb.IsAuthorizedRequest(  # cheap: no policy applies to this action
                    principal=pb.EntityUid(type="User", id=f"late-{index}"),
                    action=pb.EntityUid(type="Action", id="nothing"),
                    resource=pb.EntityUid(type="Doc", id="d"),
                )
                try:
                    stub.IsAuthorized(late, timeout=0.05)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
            worker.join(30)
            late.principal.id = "afterwards"
            after = stub.IsAuthorized(late, timeout=TIMEOUT)
        wait_for(lambda: "afterwards" in server.stdout, what="the last call's decision log line")
        stop = server.stop()
        log = server.stdout
    assert stop == 0
    assert after.decision == DENY
    assert log.count("busy-") == 600 and "afterwards" in log
    expired = [f"late-{i}" for i, code in enumerate(codes) if code != grpc.StatusCode.OK]
    assert expired, "no call expired while the batch ran: the test proves nothing"
    assert not [name for name in expired if f'\\"{name}\\"' in log]
