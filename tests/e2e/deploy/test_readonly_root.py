"""Each pdp container of the manifests, run as the image runs it, on a read-only root.

No container runtime is needed: `pip install .` (what the Dockerfile does) into a fresh
virtualenv, then `pdp serve` with the manifest's exact arguments and environment plus the
image's, as uid 10001 without capabilities, in a private mount and network namespace where
every mount is read-only except the manifest's writable emptyDirs (tmpfs at /tmp, /run/pdp,
/run/pdp-metrics). The manifest's own probe commands then run inside that namespace, as the
kubelet would run them in the container. Needs root (unshare, nsenter, setpriv); elsewhere
the tests skip and say why.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deploy import PdpContainer, env_values, pdp_containers
from tests.support.polling import wait_for
from tests.support.readonly_pod import (
    GID,
    UID,
    Installed,
    Pod,
    hidden_dependencies,
    installed_image,
    missing_tools,
    start_pod,
)

pytestmark = pytest.mark.xdist_group("readonly-root")

APP_UID = 10002  # the sidecar's service: another user in pdp's group
STRANGER = 10003  # neither pdp's user nor its group
MISSING = missing_tools() or hidden_dependencies()


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    if MISSING:
        pytest.skip(MISSING)
    with installed_image() as image:
        yield image


@pytest.fixture
def pod_for(installed: Installed) -> Iterator:
    started: list[Pod] = []

    def start(pdp: PdpContainer, env: dict[str, str]) -> Pod:
        pod = start_pod(installed, pdp, env)
        started.append(pod)
        return pod

    yield start
    for pod in started:
        if pod.process.poll() is None:
            pod.process.kill()
            pod.process.wait(10)


def _probe_command(pdp: PdpContainer, name: str, installed: Installed) -> list[str]:
    probe = pdp.container[name]
    if "exec" in probe:
        command = list(probe["exec"]["command"])
        return [str(installed.bin / command[0]), *command[1:]]
    # The kubelet's gRPC probe is a grpc.health.v1 Check of `service` on the pod's port.
    grpc = probe["grpc"]
    return [
        str(installed.bin / "pdp-probe"),
        "ready",
        f"127.0.0.1:{grpc['port']}",
        f"--service={grpc['service']}",
    ]


IS_AUTHORIZED = """
import sys, grpc
from pdp.v1 import authorizer_pb2 as pb, authorizer_pb2_grpc as rpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    answer = rpc.AuthorizerStub(channel).IsAuthorized(pb.IsAuthorizedRequest(
        principal=pb.EntityUid(type="User", id="42"),
        action=pb.EntityUid(type="Action", id="readOrder"),
        resource=pb.EntityUid(type="Order", id="o-1001")), timeout=10)
print(pb.Decision.Name(answer.decision))
"""

METRICS = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"""


def _serve_and_check(pdp: PdpContainer, pod_for, installed: Installed) -> Pod:
    env = env_values(pdp)
    pod = pod_for(pdp, env)
    ready = _probe_command(pdp, "readinessProbe", installed)

    def probe_ok(command: list[str]) -> bool:
        if pod.process.poll() is not None:
            raise AssertionError(f"pdp exited {pod.process.returncode}:\n{''.join(pod.stderr)}")
        return pod.run(command).returncode == 0

    wait_for(lambda: probe_ok(ready), 60, f"readiness {ready}")
    # pdp itself: the image's user, no capabilities, and a root it cannot write.
    status = dict(
        line.split(":\t", 1)
        for line in Path(f"/proc/{pod.process.pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split()[:2] == [str(UID), str(UID)]
    assert status["Gid"].split()[:2] == [str(GID), str(GID)]
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert int(status["NoNewPrivs"]) == 1
    cmdline = Path(f"/proc/{pod.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"serve" in cmdline
    for path in (str(installed.venv / "lib"), "/etc", "/var/tmp", "/"):
        written = pod.run(["touch", f"{path}/.pdp-write-check"])
        assert written.returncode != 0 and "Read-only file system" in written.stderr, path
    for name in ("startupProbe", "livenessProbe"):
        result = pod.run(_probe_command(pdp, name, installed))
        assert result.returncode == 0, (name, result.stderr)
    return pod


def _address(pdp: PdpContainer) -> str:
    listen = pdp.flag("--listen")
    assert listen is not None
    return listen if listen.startswith("unix:") else "127.0.0.1:" + listen.rsplit(":", 1)[1]


def _metrics_url(pdp: PdpContainer) -> str:
    metrics = pdp.flag("--metrics")
    assert metrics is not None
    return f"http://127.0.0.1:{metrics.rsplit(':', 1)[1]}/metrics"


def _stop(pod: Pod) -> int:
    pod.process.send_signal(signal.SIGTERM)
    return pod.process.wait(30)


def test_gateway_pdp_serves_from_a_read_only_root_with_workers(pod_for, installed) -> None:
    (pdp,) = [p for p in pdp_containers() if p.document.name == "pdp"]
    pod = _serve_and_check(pdp, pod_for, installed)
    answer = pod.run([str(installed.bin / "python"), "-c", IS_AUTHORIZED, _address(pdp)])
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "DECISION_ALLOW"
    metrics = pod.run([str(installed.bin / "python"), "-c", METRICS, _metrics_url(pdp)])
    assert metrics.returncode == 0, metrics.stderr
    assert 'pdp_bundle_info{name="orders-api"' in metrics.stdout
    # The workers record into the declared PROMETHEUS_MULTIPROC_DIR, nowhere else.
    multiproc = pdp.env.get("PROMETHEUS_MULTIPROC_DIR", {}).get("value", "/tmp/pdp-metrics-*")
    listing = pod.run(["sh", "-c", f"ls {multiproc}"])
    assert any(name.endswith(".db") for name in listing.stdout.split()), listing
    workers = int(env_values(pdp)["PDP_WORKERS"])
    assert workers >= 2
    assert _stop(pod) == 0, "".join(pod.stderr)
    lines = [json.loads(line) for line in pod.stdout if line.strip()]
    assert [(d["api"], d["decision"]) for d in lines] == [("IsAuthorized", "allow")]


def test_sidecar_pdp_serves_its_pod_over_the_socket_from_a_read_only_root(
    pod_for, installed
) -> None:
    (pdp,) = [p for p in pdp_containers() if p.document.name == "orders"]
    pod = _serve_and_check(pdp, pod_for, installed)
    address = _address(pdp)
    app = [str(installed.bin / "python"), "-c", IS_AUTHORIZED, address]
    (orders,) = [c for c in pdp.pod["spec"]["containers"] if c["name"] == "orders"]
    app_user = orders["securityContext"]["runAsUser"]
    app_group = orders["securityContext"]["runAsGroup"]
    assert (app_user, app_group) == (APP_UID, GID)
    answer = pod.run(app, app_user, app_group)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "DECISION_ALLOW"
    # Someone outside pdp's group cannot connect to the socket at all.
    stranger = pod.run(app, STRANGER, STRANGER)
    assert stranger.returncode != 0 and "UNAVAILABLE" in stranger.stderr
    metrics = pod.run([str(installed.bin / "python"), "-c", METRICS, _metrics_url(pdp)])
    assert 'pdp_bundle_info{name="orders-api"' in metrics.stdout
    assert _stop(pod) == 0, "".join(pod.stderr)
    decisions = [json.loads(line) for line in pod.stdout if line.strip()]
    assert [d["decision"] for d in decisions] == ["allow"]
    assert not [line for line in pod.stderr if "Read-only file system" in line]
