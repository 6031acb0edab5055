"""GetStatus and `pdp status --address`: what an operator sees, and exit codes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pdp
from pdp.bundle.store import BundleStore
from pdp.v1 import authorizer_pb2 as pb
from tests.server.bundles import PLAIN_REVISION
from tests.server.helpers import TIMEOUT
from tests.support.server import REPO, InProcessServer, ServerProcess

STRAY_WARNING = "entity.json: unknown file, ignored (did you mean entities.json?)"


def pdp_status(address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pdp", "status", "--address", address, "--timeout", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_get_status_describes_the_active_bundle(authorizer, plain_dir: Path) -> None:
    before = time.time()
    status = authorizer.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
    assert status.serving
    assert (status.bundle_name, status.bundle_revision) == ("plain", PLAIN_REVISION)
    assert status.bundle_path == str(plain_dir)
    assert (status.policy_count, status.template_link_count, status.entity_count) == (5, 0, 3)
    assert (status.activations, status.load_failures, status.last_error) == (1, 0, "")
    assert list(status.warnings) == [STRAY_WARNING]
    assert status.version == pdp.__version__
    assert status.HasField("activated_at") and not status.HasField("last_error_at")
    assert before - 600 < status.activated_at.seconds <= before
    assert before - 600 < status.started_at.seconds <= before


def test_pdp_status_prints_the_running_bundle(plain_server: ServerProcess, plain_dir) -> None:
    assert plain_server.address is not None
    shown = pdp_status(plain_server.address)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for expected in (
        "serving:        yes",
        f"bundle:         plain ({plain_dir})",
        f"revision:       {PLAIN_REVISION}",
        "contents:       5 policies, 0 template links, 3 entities",
        "activations:    1",
        "load failures:  0",
        f"warning:        {STRAY_WARNING}",
        f"pdp version:    {pdp.__version__}",
    ):
        assert expected in lines, shown.stdout
    assert any(line.startswith("activated at:   20") for line in lines), shown.stdout


def test_pdp_status_shows_no_bundle_and_the_last_error() -> None:
    store = BundleStore()
    store.record_failure("p.cedar:3: invalid policy: unexpected end of input")
    with InProcessServer(store) as server:
        shown = pdp_status(server.address)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for expected in (
        "serving:        no",
        "revision:       -",
        "activated at:   -",
        "load failures:  1",
        "last error:",
        "  p.cedar:3: invalid policy: unexpected end of input",
    ):
        assert expected in lines, shown.stdout


def test_pdp_status_against_a_dead_port_exits_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    shown = pdp_status(address)
    assert shown.returncode == 1
    assert shown.stdout == ""
    assert shown.stderr.startswith(f"error: {address}: UNAVAILABLE: "), shown.stderr
