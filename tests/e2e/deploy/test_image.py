"""The image, built with the builder this machine has and run as the manifests run it.

Skips, saying why, when no builder works here or the pinned base image cannot be had (an
offline machine). PDP_TEST_BASE_IMAGE builds on another local Python >= 3.11 image instead
of the pinned one (the Dockerfile's PYTHON_IMAGE build argument), and PDP_TEST_BUILD_FLAGS
adds builder flags (a network, a CA bundle to mount): both only for machines that need them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.deploy import (
    BUILD_SCRIPT,
    DOCKERFILE,
    PROBE,
    REPO,
    dockerfile_stages,
    key_values,
)
from tests.support.polling import wait_for

pytestmark = pytest.mark.xdist_group("image")

TAG = "localhost/pdp:make-test"
UID_GID = "10001:10001"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def find_builder() -> tuple[str | None, list[str]]:
    """The first builder that can also run containers (docker, podman), and why others fail."""
    reasons = []
    for builder in ("docker", "podman"):
        if shutil.which(builder) is None:
            reasons.append(f"{builder}: not installed")
            continue
        info = subprocess.run(
            [builder, "info"], capture_output=True, text=True, timeout=60, check=False
        )
        if info.returncode != 0:
            reasons.append(f"{builder}: {_last_line(info.stderr)}")
            continue
        return builder, reasons
    if shutil.which("buildah"):
        reasons.append("buildah: installed, but it builds only and cannot run the image")
    else:
        reasons.append("buildah: not installed")
    return None, reasons


def _pinned_base() -> str:
    preamble, _ = dockerfile_stages(DOCKERFILE.read_text())
    for instruction in preamble:
        values = key_values(instruction.value)
        if "PYTHON_IMAGE" in values:
            return values["PYTHON_IMAGE"]
    raise AssertionError("the Dockerfile has no PYTHON_IMAGE")


@dataclass
class Built:
    builder: str
    tag: str
    base: str

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.builder, *args], capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def image() -> Iterator[Built]:
    builder, reasons = find_builder()
    if builder is None:
        pytest.skip("no container builder works here: " + "; ".join(reasons))
    base = os.environ.get("PDP_TEST_BASE_IMAGE") or _pinned_base()
    present = subprocess.run(
        [builder, "image", "inspect", base], capture_output=True, text=True, check=False
    )
    if present.returncode != 0:
        pulled = subprocess.run(
            [builder, "pull", base], capture_output=True, text=True, timeout=300, check=False
        )
        if pulled.returncode != 0:
            pytest.skip(
                f"{builder} works, but the base image {base} cannot be pulled here "
                f"({_last_line(pulled.stderr)}); PDP_TEST_BASE_IMAGE names a local one"
            )
    flags = shlex.split(os.environ.get("PDP_TEST_BUILD_FLAGS", ""))
    if base != _pinned_base():
        flags += ["--build-arg", f"PYTHON_IMAGE={base}"]
    env = {**os.environ, "IMAGE": TAG, "BUILDER": builder, "BUILD_FLAGS": shlex.join(flags)}
    build = subprocess.run(
        [str(BUILD_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    yield Built(builder, TAG, base)


def test_image_reports_its_version(image: Built) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = image.run("run", "--rm", "--network", "none", "--entrypoint", "pdp", image.tag,
                       "--version")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pdp {version}"


def test_image_config_is_what_the_manifests_expect(image: Built) -> None:
    result = image.run("image", "inspect", image.tag)
    assert result.returncode == 0, result.stderr
    (inspected,) = json.loads(result.stdout)
    config = inspected["Config"]
    assert config["User"] == UID_GID
    assert config["Entrypoint"] == ["pdp", "serve"]
    assert config.get("StopSignal", "SIGTERM") in ("SIGTERM", "15")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["TMPDIR"] == "/tmp"
    # Nothing to build with, no pip in pdp's virtualenv, no caches left behind.
    script = (
        "for tool in gcc cc make /opt/pdp/bin/pip; do command -v $tool; done; "
        "for cache in /root/.cache /tmp/* /src; do test -e $cache && echo $cache; done; true"
    )
    tools = image.run("run", "--rm", "--network", "none", "--user", "0:0",
                      "--entrypoint", "sh", image.tag, "-c", script)  # fmt: skip
    assert tools.returncode == 0, tools.stderr
    assert tools.stdout.strip() == "", tools.stdout
    # Every module of pdp has bytecode the interpreter uses without checking file times, so a
    # read-only root never makes it recompile.
    bytecode = (
        "import glob, importlib.util, sys; "
        "tag = sys.implementation.cache_tag; "
        "sources = glob.glob('/opt/pdp/lib/python3*/site-packages/pdp/**/*.py', recursive=True); "
        "missing = [s for s in sources if importlib.util.cache_from_source(s) not in "
        "glob.glob('/opt/pdp/lib/python3*/site-packages/pdp/**/*.pyc', recursive=True)]; "
        "checked = [s for s in sources if s not in missing and "
        "open(importlib.util.cache_from_source(s), 'rb').read(8)[4:8] != bytes([1, 0, 0, 0])]; "
        "print(len(sources), len(missing), len(checked))"
    )
    compiled = image.run("run", "--rm", "--network", "none", "--entrypoint", "python3",
                         image.tag, "-c", bytecode)  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    count, missing, checked = (int(n) for n in compiled.stdout.split())
    assert count > 50 and missing == 0 and checked == 0, compiled.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe(check: str, address: str) -> int:
    return subprocess.run(
        [sys.executable, str(PROBE), check, address], capture_output=True, timeout=30
    ).returncode


def test_image_serves_the_example_bundle_on_a_read_only_root(image: Built) -> None:
    port, metrics = _free_port(), _free_port()
    name = f"pdp-make-test-{os.getpid()}"
    started = image.run(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--volume", f"{REPO / 'policies'}:/etc/pdp/bundle:ro",
        image.tag, "/etc/pdp/bundle", f"--listen=127.0.0.1:{port}",
        f"--metrics=127.0.0.1:{metrics}", "--workers=2",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        address = f"127.0.0.1:{port}"
        wait_for(lambda: _probe("ready", address) == 0, 60, "the container's pdp to be ready")
        inside = image.run("exec", name, "pdp-probe", "live", address)
        assert inside.returncode == 0, inside.stderr
        stopped = image.run("stop", "--time", "15", name, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        state = image.run("inspect", name, "--format", "{{.State.ExitCode}}")
        assert state.stdout.strip() == "0"  # SIGTERM: drained and exited cleanly
        logs = image.run("logs", name)
        assert '"event": "stopped"' in logs.stdout + logs.stderr
    finally:
        image.run("rm", "--force", name)
