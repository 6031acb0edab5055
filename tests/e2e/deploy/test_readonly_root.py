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
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.deploy import (
    DOCKERFILE,
    PROBE,
    REPO,
    PdpContainer,
    dockerfile_stages,
    env_values,
    find,
    key_values,
    pdp_containers,
)
from tests.support.kubelet import ConfigMapVolume
from tests.support.polling import wait_for

pytestmark = pytest.mark.xdist_group("readonly-root")

UID = 10001
GID = 10001
APP_UID = 10002  # the sidecar's service: another user in pdp's group
STRANGER = 10003  # neither pdp's user nor its group
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root for unshare/nsenter/setpriv (mount and network namespaces)"
    for tool in ("unshare", "nsenter", "setpriv", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create mount and network namespaces here: {probe.stderr.strip()}"
    try:
        _unreachable_folders(_needed_paths())
    except LookupError as exc:
        return f"uid {UID} cannot be given this test's Python: {exc}"
    return None


@dataclass
class Installed:
    """`pip install .` of the working tree into its own virtualenv, world-readable."""

    base: Path
    venv: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def _image_env(venv_bin: Path) -> dict[str, str]:
    """The runtime stage's ENV, with the image's /opt/pdp/bin replaced by `venv_bin`."""
    _, stages = dockerfile_stages(DOCKERFILE.read_text())
    env: dict[str, str] = {}
    for instruction in stages[-1].all("ENV"):
        env.update(key_values(instruction.value))
    env["PATH"] = (
        env["PATH"]
        .replace("/opt/pdp/bin", str(venv_bin))
        .replace("$PATH", "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    )
    env["HOME"] = "/nonexistent"  # the image's user has no home
    return env


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    if MISSING:
        pytest.skip(MISSING)
    base = Path(tempfile.mkdtemp(prefix="pdp-ro-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        source = base / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, source / name)
        shutil.copytree(REPO / "pdp", source / "pdp", ignore=shutil.ignore_patterns("__pycache__"))
        wheels = base / "wheels"
        run = {"check": True, "capture_output": True, "text": True, "timeout": 300}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(wheels),
                str(source),
            ],
            **run,
        )
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], **run)
        site = next((venv / "lib").glob("python3*/site-packages"))
        # Dependencies from this test run's environment; its editable pdp stays out (a .pth
        # line adds a folder to sys.path without processing the .pth files inside it).
        deps = _dependency_dirs()
        (site / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n")
        (wheel,) = wheels.glob("pdp-*.whl")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(venv / "bin" / "python"),
                "install",
                "--quiet",
                "--no-deps",
                "--no-index",
                str(wheel),
            ],
            **run,
        )
        probe = venv / "bin" / "pdp-probe"
        text = PROBE.read_text().replace("#!/opt/pdp/bin/python", f"#!{venv}/bin/python", 1)
        probe.write_text(text)
        probe.chmod(0o755)
        check = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import pdp; print(pdp.__file__)"],
            cwd="/",
            **run,
        )
        assert check.stdout.startswith(str(site)), check.stdout  # the installed copy, not ours
        _make_world_readable(base)
        yield Installed(base, venv, _image_env(venv / "bin"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() or mode & stat.S_IXUSR else 0)
        path.chmod(mode | extra)


def _unreachable_folders(needed: list[str]) -> dict[str, set[str]]:
    """Folders uid 10001 cannot enter on the way to `needed` paths (e.g. /root, 0700), each
    with its children on those ways: the namespace lays a world-readable tmpfs over such a
    folder and binds the children back. Raises LookupError when one way has two of them."""
    found: dict[str, set[str]] = {}
    for path in needed:
        parts = Path(os.path.realpath(path)).parts
        blocked = [
            depth for depth in range(1, len(parts))
            if not os.stat(Path(*parts[:depth])).st_mode & stat.S_IXOTH
        ]  # fmt: skip
        if len(blocked) > 1:
            raise LookupError(f"{path}: more than one folder on its way is closed to others")
        for depth in blocked:
            found.setdefault(str(Path(*parts[:depth])), set()).add(str(Path(*parts[: depth + 1])))
    return found


def _needed_paths() -> list[str]:
    """What pdp reads from outside its virtualenv: the interpreter and the dependencies."""
    return [sys.base_prefix, *_dependency_dirs()]


def _dependency_dirs() -> list[str]:
    return [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


MISSING = _missing_tools()


@dataclass
class Pod:
    """One pdp container running in its namespaces; commands run there as the kubelet would."""

    process: subprocess.Popen[str]
    installed: Installed
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def run(
        self, command: list[str], uid: int = UID, gid: int = GID
    ) -> subprocess.CompletedProcess[str]:
        enter = ["nsenter", f"--target={self.process.pid}", "--mount", "--net"]
        enter += [f"--setuid={uid}", f"--setgid={gid}", "--wd=/", "--"]
        env = ["env", "-i", *(f"{k}={v}" for k, v in self.installed.env.items())]
        return subprocess.run(
            enter + env + command, capture_output=True, text=True, timeout=60, check=False
        )


def _setup_script(installed: Installed, writable: list[str]) -> str:
    """Shell run by root inside the new namespaces, ending in exec of pdp as uid 10001."""
    lines = ["set -eu", "ip link set lo up"]
    for n, (parent, children) in enumerate(sorted(_unreachable_folders(_needed_paths()).items())):
        holds = [(installed.base / f"hold-{n}-{i}", child) for i, child in enumerate(children)]
        for hold, child in holds:
            lines += [f"mkdir -p {hold}", f"mount --bind {shlex.quote(child)} {hold}"]
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(parent)}")
        for hold, child in holds:
            lines += [f"mkdir -p {shlex.quote(child)}", f"mount --bind {hold} {shlex.quote(child)}"]
    pseudo = " ".join(f"{p}|{p}/*" for p in PSEUDO_FILESYSTEMS).replace(" ", "|")
    lines += [
        # Every mount read-only (in this namespace only), except the kernel's pseudo ones.
        "awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do",
        f'  case "$mp" in {pseudo}) continue;; esac',
        '  mount -o remount,bind,ro "$mp"',
        "done",
        f"if touch {installed.base}/written 2>/dev/null; then",
        "  echo 'the root is still writable' >&2; exit 97",
        "fi",
    ]
    for path in writable:  # the emptyDirs: group-owned by the fsGroup, setgid, as the kubelet
        top = "/" + path.strip("/").split("/")[0]
        if top in ("/tmp", "/run"):
            lines.append(f"mountpoint -q {top} || mount -t tmpfs -o mode=0755,size=16m tmpfs {top}")
        lines += [f"mkdir -p {path}", f"chown 0:{GID} {path}", f"chmod 2775 {path}"]
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in installed.env.items())
    lines.append(
        f"exec setpriv --reuid={UID} --regid={GID} --clear-groups --inh-caps=-all "
        f'--bounding-set=-all --no-new-privs -- env -i {env} "$@"'
    )
    return "\n".join(lines)


@pytest.fixture
def pod_for(installed: Installed, tmp_path: Path) -> Iterator:
    started: list[Pod] = []

    def start(pdp: PdpContainer, env: dict[str, str]) -> Pod:
        bundle = installed.base / f"bundle-{pdp.document.name}"
        volume_spec = pdp.mounts()[pdp.args[0]]["volume"]["configMap"]
        config_map = find("ConfigMap", volume_spec["name"], pdp.document.namespace).body
        ConfigMapVolume(bundle).write(config_map["data"], volume_spec["items"])
        _make_world_readable(bundle)
        args = pdp.expanded_args(env)
        args[0] = str(bundle)  # the only path that differs from the container's
        container_env = {k: v for k, v in env.items() if k in pdp.env}
        installed_env = {**installed.env, **container_env}
        pod_installed = Installed(installed.base, installed.venv, installed_env)
        script = _setup_script(pod_installed, pdp.writable_paths())
        command = ["unshare", "--mount", "--net", "--propagation", "private", "--"]
        command += ["sh", "-c", script, "pdp-pod", str(installed.bin / "pdp"), "serve", *args]
        process = subprocess.Popen(
            command, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        pod = Pod(process, pod_installed)
        for stream, sink in ((process.stdout, pod.stdout), (process.stderr, pod.stderr)):
            threading.Thread(target=lambda s=stream, k=sink: k.extend(s), daemon=True).start()
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
