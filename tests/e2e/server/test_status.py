"""GetStatus and `pdp status --address`: what an operator sees, and exit codes.

`pdp status` runs as a process (`pdp_status`) where its exit status is what a readiness probe
reads (0, 1, 3) and for the text an operator sees; the other checks of its output run the same
command in this process (`status_cli`, tests.support.cli.run_cli), against real servers.
Over TLS and mTLS: tests/e2e/hardening/test_listener.py, on its TLS servers."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pdp
from pdp.live.store import BundleStore
from pdp.v1 import authorizer_pb2 as pb
from tests.support.cli import run_cli
from tests.support.grpc_calls import TIMEOUT
from tests.support.polling import wait_for
from tests.support.server import REPO, InProcessServer, ServerProcess
from tests.support.server_bundles import PLAIN_REVISION, STRAY_WARNING


def pdp_status(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pdp", "status", "--address", address, "--timeout", "5", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def status_cli(address: str, *args: str) -> subprocess.CompletedProcess:
    """`pdp status` as `pdp_status` runs it, in this process (no interpreter start)."""
    return run_cli("status", "--address", address, "--timeout", "5", *args)


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
    assert plain_server.process is not None
    assert f"pid:            {plain_server.process.pid}" in lines, shown.stdout


def test_pdp_status_shows_no_bundle_and_the_last_error_and_exits_3() -> None:
    store = BundleStore()
    store.record_failure("p.cedar:3: invalid policy: unexpected end of input")
    with InProcessServer(store) as server:
        shown = status_cli(server.address)
    assert shown.returncode == 3, shown.stderr  # reachable, not serving: not ready
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


def _rfc3339(text: str) -> datetime:
    assert text.endswith("Z") and "T" in text, text
    return datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


def test_pdp_status_json_has_every_field(plain_server: ServerProcess, plain_dir: Path) -> None:
    assert plain_server.address is not None and plain_server.process is not None
    shown = status_cli(plain_server.address, "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert set(status) == {f.name for f in pb.GetStatusResponse.DESCRIPTOR.fields}
    assert status["serving"] is True
    assert status["pid"] == plain_server.process.pid
    assert (status["bundle_name"], status["bundle_revision"]) == ("plain", PLAIN_REVISION)
    assert status["bundle_path"] == str(plain_dir)
    assert (status["policy_count"], status["template_link_count"], status["entity_count"]) == (
        5,
        0,
        3,
    )
    assert (status["activations"], status["load_failures"], status["last_error"]) == (1, 0, "")
    assert status["warnings"] == [STRAY_WARNING]
    assert status["version"] == pdp.__version__
    assert status["last_error_at"] is None
    now = datetime.now(UTC)
    for name in ("activated_at", "started_at"):
        assert now - timedelta(minutes=10) < _rfc3339(status[name]) <= now


def test_not_serving_is_exit_3_in_json_too_then_0_once_a_bundle_comes(
    tmp_path: Path, plain_dir: Path
) -> None:
    """`pdp status` as a readiness probe on `pdp serve --wait-for-bundle`."""
    root = tmp_path / "bundle"
    root.mkdir()
    with ServerProcess(root, "--wait-for-bundle") as server:
        assert server.address is not None and server.process is not None
        waiting = pdp_status(server.address, "--json")
        assert waiting.returncode == 3, waiting.stderr
        status = json.loads(waiting.stdout)
        assert status["serving"] is False and status["bundle_revision"] == ""
        assert status["activated_at"] is None and status["pid"] == server.process.pid
        shutil.copytree(plain_dir, root, dirs_exist_ok=True)
        wait_for(lambda: status_cli(server.address or "").returncode == 0, timeout=30)
        assert json.loads(status_cli(server.address, "--json").stdout)["serving"] is True


def test_pdp_status_against_a_dead_port_exits_1_in_json_too() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    shown = status_cli(address, "--json")
    assert (shown.returncode, shown.stdout) == (1, "")
    assert shown.stderr.startswith(f"error: {address}: UNAVAILABLE: "), shown.stderr


def test_pdp_status_tls_files_that_cannot_be_read_are_usage_errors(tmp_path: Path) -> None:
    shown = status_cli("127.0.0.1:1", "--tls-ca", str(tmp_path / "missing.pem"))
    assert shown.returncode == 2
    assert shown.stderr == (
        f"error: --tls-ca {tmp_path / 'missing.pem'}: cannot read: No such file or directory\n"
    )
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello")
    shown = status_cli("127.0.0.1:1", "--tls-ca", str(not_pem))
    assert (shown.returncode, shown.stderr) == (2, f"error: --tls-ca {not_pem}: not a PEM file\n")
