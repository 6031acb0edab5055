"""The bundle as a ConfigMap: generated, mounted as the kubelet does, hot-reloaded, probed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pdp.bundle import load_bundle
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.deploy import KUBERNETES, PROBE, find, load_script, pdp_containers
from tests.support.kubelet import ConfigMapVolume
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import REPO, ServerProcess

GENERATOR = KUBERNETES / "bundle_configmap.py"
SERVING = health_pb2.HealthCheckResponse.SERVING
generator = load_script(GENERATOR, "bundle_configmap")
COMMITTED = [
    find("ConfigMap", "orders-policy", "shop"),
    find("ConfigMap", "orders-policy", "pdp"),
]


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def probe(check: str, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), check, address, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("document", COMMITTED, ids=lambda d: d.label)
def test_committed_configmap_is_generated_from_the_example_bundle(document: Any) -> None:
    """Stale ConfigMaps fail here: regenerate with `make k8s-bundles`."""
    result = run_generator(
        "policies", "--name", document.name, "--namespace", str(document.namespace)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == document.path.read_text()


@pytest.mark.parametrize("pdp", pdp_containers(), ids=lambda p: p.label)
def test_volume_items_mount_every_key_of_the_configmap(pdp: Any) -> None:
    volume = pdp.mounts()[pdp.args[0]]["volume"]["configMap"]
    config_map = find("ConfigMap", volume["name"], pdp.document.namespace).body
    assert sorted(i["key"] for i in volume["items"]) == sorted(config_map["data"])
    result = run_generator("policies", "--items")
    assert result.returncode == 0, result.stderr
    assert volume["items"] == yaml.safe_load(result.stdout)


def test_configmap_mounted_by_the_kubelet_is_the_bundle(tmp_path: Path) -> None:
    document = COMMITTED[0].body
    (pdp,) = [p for p in pdp_containers() if p.document.name == "orders"]
    items = pdp.mounts()[pdp.args[0]]["volume"]["configMap"]["items"]
    ConfigMapVolume(tmp_path / "bundle").write(document["data"], items)
    mounted = load_bundle(tmp_path / "bundle")
    original = load_bundle(EXAMPLE_BUNDLE)
    assert mounted.revision == original.revision
    assert mounted.revision == document["metadata"]["annotations"]["pdp/bundle-revision"]
    assert [p.id for p in mounted.policies] == [p.id for p in original.policies]
    assert mounted.gateway is not None  # routes.yaml and its JWKS file under keys/ are there


def _status(address: str) -> pb.GetStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.AuthorizerStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service="")
        return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def _configmap_of(bundle: Path) -> dict[str, Any]:
    return generator.configmap(bundle, "orders-policy", "shop")


def test_hot_reload_through_the_kubelet_swap_as_the_probes_see_it(tmp_path: Path) -> None:
    """The sidecar's pdp, from no ConfigMap to a good one, a changed one and a broken one."""
    (pdp,) = [p for p in pdp_containers() if p.document.name == "orders"]
    items = pdp.mounts()[pdp.args[0]]["volume"]["configMap"]["items"]
    volume = ConfigMapVolume(tmp_path / "bundle")  # `optional: true` and no ConfigMap: empty
    socket = tmp_path / "run" / "pdp.sock"
    socket.parent.mkdir()
    address = f"unix:{socket}"
    args = [a for a in pdp.args[1:] if not a.startswith(("--listen", "--metrics"))]
    with ServerProcess(volume.root, *args, "--metrics=127.0.0.1:0", listen=address) as server:
        assert probe("live", address).returncode == 0
        waiting = probe("ready", address)
        assert waiting.returncode == 1 and "NOT_SERVING" in waiting.stderr

        good = COMMITTED[0].body
        volume.write(good["data"], items)
        # Polled in this process on the health service the probe asks; then the probe itself.
        wait_for(lambda: _health(address) == SERVING, 20, "ready after the first write")
        assert probe("ready", address).returncode == 0
        assert (
            _status(address).bundle_revision
            == good["metadata"]["annotations"]["pdp/bundle-revision"]
        )

        changed_dir = tmp_path / "changed"
        shutil.copytree(EXAMPLE_BUNDLE, changed_dir)
        (changed_dir / "manifest.yaml").write_text("name: orders-api\nrevision: r2\n")
        changed = _configmap_of(changed_dir)
        volume.write(changed["data"], items)
        wait_for(lambda: _status(address).bundle_revision == "r2", 20, "revision r2")

        failures = _status(address).load_failures
        broken = dict(changed["data"])
        broken["baseline.cedar"] += "\npermit (principal, action, resource\n"
        volume.write(broken, items)
        wait_for(lambda: _status(address).load_failures > failures, 20, "the failed reload")
        status = _status(address)
        assert status.serving and status.bundle_revision == "r2"
        assert "baseline.cedar" in status.last_error
        # A bad bundle: still ready (the last good one serves) and certainly alive.
        assert probe("ready", address).returncode == 0
        assert probe("live", address).returncode == 0
        assert server.stop() == 0
    dead = probe("live", address)
    assert dead.returncode == 1 and "UNAVAILABLE" in dead.stderr
    assert probe("ready", address).returncode == 1


def test_probe_refuses_bad_usage() -> None:
    for args in (["ready"], ["sleep", "127.0.0.1:1"], ["live", "127.0.0.1:1", "--timeout=inf"]):
        result = subprocess.run(
            [sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 2, args


def test_probe_ready_names_the_service(http_server: ServerProcess) -> None:
    """Against the worker's shared `pdp serve` over the example bundle (conftest.py)."""
    address = http_server.address
    assert address is not None
    for service in ("", "pdp.v1.Authorizer", "envoy.service.auth.v3.Authorization"):
        assert probe("ready", address, f"--service={service}").returncode == 0
    unknown = probe("ready", address, "--service=no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr


# --- the generator refuses what cannot be a ConfigMap, naming the file ---------------------


def _bundle_with(tmp_path: Path, name: str, content: bytes) -> Path:
    bundle = tmp_path / "b"
    shutil.copytree(EXAMPLE_BUNDLE, bundle)
    target = bundle / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return bundle


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("extra/bad.cedar", b"permit (principal, action, resource", "extra/bad.cedar"),
        (
            "my policy.cedar",
            b"permit (principal, action, resource);\n",
            "not a valid ConfigMap key",
        ),
        ("a__b.cedar", b"permit (principal, action, resource);\n", "reserved to stand for `/`"),
        (
            "d" * 130 + "/" + "e" * 130 + ".cedar",
            b"permit (principal, action, resource);\n",
            "at most 253",
        ),
        (
            "huge.cedar",
            b"// padding\n" * 100_000 + b"permit (principal, action, resource);\n",
            "over the",
        ),
    ],
    ids=["does-not-load", "space", "separator", "long-name", "too-big"],
)
def test_generator_refuses_a_bundle_a_configmap_cannot_hold(
    tmp_path: Path, name: str, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generator's main in this process; as a process: the missing directory below."""
    bundle = _bundle_with(tmp_path, name, content)
    returncode = generator.main([str(bundle), "--name", "x", "--namespace", "y"])
    stdout, stderr = capsys.readouterr()
    assert returncode == 3
    assert message in stderr
    assert stdout == ""


def test_generator_refuses_a_missing_directory(tmp_path: Path) -> None:
    result = run_generator(str(tmp_path / "nope"), "--items")
    assert result.returncode == 3 and "not a directory" in result.stderr
