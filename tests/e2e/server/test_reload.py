"""Hot reload through a real `pdp serve` process: watch modes, SIGHUP, waiting, status, load."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pdp.bundle.loader import read_bundle
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.cli import run_cli
from tests.support.kubelet import ConfigMapMount
from tests.support.polling import wait_for
from tests.support.reload import REQUEST, TIMEOUT, Load, replace_file, wait_status
from tests.support.server import REPO, ServerProcess

ALLOW = '@id("main")\npermit(principal == User::"alice", action == Action::"read", resource);\n'
DENY = '@id("main")\npermit(principal == User::"bob", action == Action::"read", resource);\n'
AFTER_SWITCH = 50  # answers a client sees after the switch


def stub_for(server: ServerProcess) -> tuple[grpc.Channel, pb_grpc.AuthorizerStub]:
    assert server.address is not None
    channel = grpc.insecure_channel(server.address)
    grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    return channel, pb_grpc.AuthorizerStub(channel)


def make_bundle(root: Path, policy: str = ALLOW) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.cedar").write_text(policy)
    return root


def digest(root: Path) -> str:
    return read_bundle(root).digest


def test_editing_a_policy_under_load_switches_the_decision_without_failed_calls(
    tmp_path: Path,
) -> None:
    root = make_bundle(tmp_path / "bundle")
    with ServerProcess(root) as server, Load(server.address, threads=3) as load:
        assert server.address is not None
        load.wait_for(lambda a: a.decision == pb.DECISION_ALLOW)
        changed_at = time.monotonic()
        (root / "main.cedar").write_text(DENY)  # in place, like `echo > file`
        denied = load.wait_for(lambda a: a.decision == pb.DECISION_DENY)
        # keep calling a little after the switch: no answer may go back to the old policy
        wait_for(lambda: sum(a.at > denied.at for a in load.answers) >= AFTER_SWITCH)
        load.stop()
    print(f"reload latency seen by a client: {(denied.at - changed_at) * 1000:.0f} ms")
    assert load.errors == []
    assert denied.revision == digest(root)
    after = [a for a in load.answers if a.at > denied.at]
    assert after and {a.decision for a in after} == {pb.DECISION_DENY}


def test_poll_mode_picks_up_changes_and_configmap_swaps(tmp_path: Path) -> None:
    mount = ConfigMapMount(tmp_path / "bundle")
    mount.write({"main.cedar": ALLOW})
    args = ("--watch", "poll", "--poll-interval", "0.2")
    with ServerProcess(mount.root, *args) as server:
        channel, stub = stub_for(server)
        with channel:
            first = wait_status(stub, lambda s: s.serving)
            mount.write({"main.cedar": DENY})
            status = wait_status(stub, lambda s: s.bundle_revision != first.bundle_revision)
            assert status.bundle_revision == digest(mount.root)
            assert stub.IsAuthorized(REQUEST, timeout=TIMEOUT).decision == pb.DECISION_DENY
    assert '"mode": "poll"' in server.stderr


def test_configmap_swap_reloads_with_inotify(tmp_path: Path) -> None:
    mount = ConfigMapMount(tmp_path / "bundle")
    mount.write({"main.cedar": ALLOW, "manifest.yaml": "revision: cm-1\n"})
    with ServerProcess(mount.root) as server:
        channel, stub = stub_for(server)
        with channel:
            assert stub.IsAuthorized(REQUEST, timeout=TIMEOUT).bundle_revision == "cm-1"
            mount.write({"main.cedar": DENY, "manifest.yaml": "revision: cm-2\n"})
            wait_status(stub, lambda s: s.bundle_revision == "cm-2")
            answer = stub.IsAuthorized(REQUEST, timeout=TIMEOUT)
            assert (answer.bundle_revision, answer.decision) == ("cm-2", pb.DECISION_DENY)


def test_sighup_forces_a_reload_when_watching_is_off(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "bundle")
    with ServerProcess(root, "--watch", "off", "--log-level", "debug") as server:
        channel, stub = stub_for(server)
        with channel:
            before = wait_status(stub, lambda s: s.serving)
            replace_file(root / "main.cedar", DENY)
            # The subject: nothing watches, so the change is not seen on its own. No event
            # can say so; a second is well past the watchers' debounce.
            time.sleep(1.0)
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT) == before
            assert server.process is not None
            server.process.send_signal(signal.SIGHUP)
            status = wait_status(stub, lambda s: s.bundle_revision == digest(root))
            assert status.activations == 2
            assert stub.IsAuthorized(REQUEST, timeout=TIMEOUT).decision == pb.DECISION_DENY
            server.process.send_signal(signal.SIGHUP)  # nothing changed: no new activation
            wait_for(
                lambda: any(
                    '"reload_unchanged"' in line and '"reason": "SIGHUP"' in line
                    for line in server.stderr_lines
                ),
                what="the SIGHUP reload finding the bundle unchanged",
            )
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).activations == 2
        assert server.stop() == 0
    assert '"reason": "SIGHUP"' in server.stderr


def test_wait_for_bundle_serves_once_a_bundle_appears(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    with ServerProcess(root, "--wait-for-bundle") as server:
        channel, stub = stub_for(server)
        with channel:
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="")
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            assert health.Check(check, timeout=TIMEOUT).status == not_serving
            with pytest.raises(grpc.RpcError) as raised:
                stub.IsAuthorized(REQUEST, timeout=TIMEOUT)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            status = wait_status(stub, lambda s: s.load_failures >= 1)
            assert not status.serving and "does not exist" in status.last_error

            root.mkdir()  # an empty folder first, as a volume mount would be
            status = wait_status(stub, lambda s: "bundle directory is empty" in s.last_error)
            assert not status.serving
            assert health.Check(check, timeout=TIMEOUT).status == not_serving
            make_bundle(root)
            wait_status(stub, lambda s: s.serving)
            serving = health_pb2.HealthCheckResponse.SERVING
            wait_for(
                lambda: health.Check(check, timeout=TIMEOUT).status == serving,
                what="health SERVING",
                interval=0.02,
            )
            answer = stub.IsAuthorized(REQUEST, timeout=TIMEOUT)
            assert answer.decision == pb.DECISION_ALLOW
            status = stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
            assert (status.activations, status.last_error) == (1, "")


def run_pdp(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("layout", ["empty", "only-hidden"])
def test_serve_without_a_bundle_exits_3_unless_told_to_wait(tmp_path: Path, layout: str) -> None:
    """A missing directory: test_serve_cli.py::test_a_missing_directory_exits_3."""
    root = tmp_path / "bundle"
    root.mkdir()
    if layout == "only-hidden":
        (root / ".git").mkdir()
        (root / ".#main.cedar").write_text("lock")
    result = run_pdp("serve", str(root), "--listen", "127.0.0.1:0")
    assert result.returncode == 3, result.stderr
    assert f"{root}: bundle directory is empty" in result.stderr


def test_serve_with_an_invalid_bundle_exits_3_with_the_errors_even_when_waiting(
    tmp_path: Path,
) -> None:
    root = make_bundle(tmp_path / "bundle", "permit(principal, action")
    (root / "other.cedar").write_text('@id("o")\nforbid(principal, action, resource) when {')
    for extra in ((), ("--wait-for-bundle",)):
        result = run_pdp("serve", str(root), "--listen", "127.0.0.1:0", *extra)
        assert result.returncode == 3, result.stderr
        assert "main.cedar:1" in result.stderr
        assert "other.cedar:" in result.stderr
        assert "2 problem(s)" in result.stderr


def test_status_shows_the_last_error_after_a_bad_change_and_clears_it_after_a_good_one(
    tmp_path: Path,
) -> None:
    root = make_bundle(tmp_path / "bundle")
    (root / "manifest.yaml").write_text("name: status-test\nrevision: good-1\n")
    with ServerProcess(root) as server:
        assert server.address is not None
        channel, stub = stub_for(server)
        with channel:
            first = wait_status(stub, lambda s: s.serving)
            replace_file(root / "main.cedar", '@id("main")\npermit(principal, action, resource')
            failed = wait_status(stub, lambda s: s.load_failures == 1)
            assert failed.bundle_revision == "good-1"
            assert failed.activated_at == first.activated_at
            assert failed.HasField("last_error_at")

            shown = run_cli("status", "--address", server.address)
            assert shown.returncode == 0, shown.stderr
            assert "revision:       good-1" in shown.stdout
            assert "load failures:  1" in shown.stdout
            assert "last error:" in shown.stdout
            assert "main.cedar:" in shown.stdout

            replace_file(root / "main.cedar", DENY)
            (root / "manifest.yaml").write_text("name: status-test\nrevision: good-2\n")
            good = wait_status(stub, lambda s: s.bundle_revision == "good-2")
            assert good.last_error == "" and not good.HasField("last_error_at")
            assert (good.activations, good.load_failures) == (2, 1)
            assert good.activated_at.ToNanoseconds() > first.activated_at.ToNanoseconds()

            shown = run_cli("status", "--address", server.address)
            assert shown.returncode == 0, shown.stderr
            assert "revision:       good-2" in shown.stdout
            assert "activations:    2" in shown.stdout
            assert "last error" not in shown.stdout
    failures = [line for line in server.stderr_lines if '"reload_failed"' in line]
    assert len(failures) == 1 and "main.cedar:" in failures[0]
