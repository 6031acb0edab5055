"""A pdp container's sandbox without a container runtime, for tests/e2e/deploy/test_readonly_root.

`installed_image()` is `pip install .` (what the Dockerfile does) into a fresh virtualenv with
the image's environment; `start_pod` runs `pdp serve` from it as uid 10001 without
capabilities, in a private mount and network namespace where every mount is read-only except
the manifest's writable emptyDirs; `Pod.run` runs a command in there as the kubelet would in
the container. Needs root (unshare, nsenter, setpriv): `missing_tools()` says what is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.deploy import (
    DOCKERFILE,
    PROBE,
    REPO,
    PdpContainer,
    dockerfile_stages,
    find,
    key_values,
)
from tests.support.kubelet import ConfigMapVolume

UID = 10001
GID = 10001
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def missing_tools() -> str | None:
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
        unreachable_folders(needed_paths())
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


def image_env(venv_bin: Path) -> dict[str, str]:
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


@contextmanager
def installed_image() -> Iterator[Installed]:
    """`pip install .` into a fresh virtualenv under /var/tmp, world-readable; removed after."""
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
        deps = dependency_dirs()
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
        make_world_readable(base)
        yield Installed(base, venv, image_env(venv / "bin"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() or mode & stat.S_IXUSR else 0)
        path.chmod(mode | extra)


def unreachable_folders(needed: list[str]) -> dict[str, set[str]]:
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


def needed_paths() -> list[str]:
    """What pdp reads from outside its virtualenv: the interpreter and the dependencies."""
    return [sys.base_prefix, *dependency_dirs()]


def hidden_dependencies() -> str:
    """Why the pod cannot see this run's interpreter or dependencies ("" when it can): the pod
    lays its own tmpfs (the emptyDir) over /tmp and /run, so a checkout or virtualenv under
    them (`git clone` into /tmp) is out of its sight."""
    hidden = [
        p for p in needed_paths()
        if os.path.realpath(p).split("/")[1:2] in (["tmp"], ["run"])
    ]  # fmt: skip
    if not hidden:
        return ""
    return (
        f"{hidden[0]} is under /tmp or /run, which the pod replaces with its own emptyDir: "
        "run the tests from a checkout elsewhere to check the read-only root"
    )


def dependency_dirs() -> list[str]:
    return [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


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


def setup_script(installed: Installed, writable: list[str]) -> str:
    """Shell run by root inside the new namespaces, ending in exec of pdp as uid 10001."""
    lines = ["set -eu", "ip link set lo up"]
    for n, (parent, children) in enumerate(sorted(unreachable_folders(needed_paths()).items())):
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


def start_pod(installed: Installed, pdp: PdpContainer, env: dict[str, str]) -> Pod:
    """`pdp serve` with the container's arguments and `env`, over its ConfigMap, in new mount and
    network namespaces set up by `setup_script`."""
    bundle = installed.base / f"bundle-{pdp.document.name}"
    volume_spec = pdp.mounts()[pdp.args[0]]["volume"]["configMap"]
    config_map = find("ConfigMap", volume_spec["name"], pdp.document.namespace).body
    ConfigMapVolume(bundle).write(config_map["data"], volume_spec["items"])
    make_world_readable(bundle)
    args = pdp.expanded_args(env)
    args[0] = str(bundle)  # the only path that differs from the container's
    container_env = {k: v for k, v in env.items() if k in pdp.env}
    installed_env = {**installed.env, **container_env}
    pod_installed = Installed(installed.base, installed.venv, installed_env)
    script = setup_script(pod_installed, pdp.writable_paths())
    command = ["unshare", "--mount", "--net", "--propagation", "private", "--"]
    command += ["sh", "-c", script, "pdp-pod", str(installed.bin / "pdp"), "serve", *args]
    process = subprocess.Popen(
        command, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pod = Pod(process, pod_installed)
    for stream, sink in ((process.stdout, pod.stdout), (process.stderr, pod.stderr)):
        threading.Thread(target=lambda s=stream, k=sink: k.extend(s), daemon=True).start()
    return pod
