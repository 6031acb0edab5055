"""`pdp serve` as a process: exit codes, graceful SIGTERM/SIGINT, and a port it cannot share."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from pdp.cli.main import build_parser
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.gateway import (
    bearer,
    check_request,
    ext_authz,
    metadata_of,
    public_jwk,
    token,
)
from tests.support.grpc_calls import ALLOW, TIMEOUT, request
from tests.support.jwks import KEY as FAULT_KEY
from tests.support.jwks import ORDERS, FlakyJwks, url_bundle
from tests.support.polling import wait_for
from tests.support.server import REPO, ServerProcess
from tests.support.server_bundles import PLAIN_REVISION, STRAY_WARNING, write_bundle


def pdp_serve(*args: str) -> subprocess.CompletedProcess:
    """Run `pdp serve` expecting it to exit on its own (it is killed if it keeps serving)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "pdp", "serve", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"pdp serve {' '.join(args)} kept running instead of exiting:\n{stderr}")


def log_lines(stderr: str) -> list[dict]:
    """Every stderr line of `pdp serve` as JSON; fails on one that is not (a raw grpc line)."""
    lines = []
    for line in stderr.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r} in:\n{stderr}")
    return lines


def start_failure(served: subprocess.CompletedProcess) -> dict:
    """The one `start_failed` line of a `pdp serve` that could not start."""
    failures = [e for e in log_lines(served.stderr) if e.get("event") == "start_failed"]
    assert len(failures) == 1, served.stderr
    assert failures[0]["level"] == "error" and failures[0]["exit_code"] == served.returncode
    return failures[0]


def test_an_invalid_bundle_exits_3_with_its_problems(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", {"p.cedar": "permit(principal, action, resource\n"})
    served = pdp_serve(str(bundle), "--listen", "127.0.0.1:0")
    assert served.returncode == 3
    (failed,) = log_lines(served.stderr)  # JSON like the rest of the server log, and only it
    assert failed["event"] == "bundle_load_failed" and failed["level"] == "error"
    assert failed["message"] == f"bundle {bundle} does not load (1 problem(s))"
    assert failed["path"] == str(bundle) and failed["exit_code"] == 3
    assert failed["errors"] == ["p.cedar:1:1: invalid policy: unexpected end of input"]


def test_a_missing_directory_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    served = pdp_serve(str(missing), "--listen", "127.0.0.1:0")
    assert served.returncode == 3
    (failed,) = log_lines(served.stderr)
    assert failed["errors"] == [f"{missing}: bundle directory does not exist"]


def test_the_start_log_names_the_bundle_path_and_revision_and_sigint_stops_cleanly(
    plain_dir: Path,
) -> None:
    """SIGINT here; SIGTERM's clean stop: test_waiting_for_a_bundle_is_logged_as_json."""
    with ServerProcess(plain_dir) as server:
        assert server.stop(signal.SIGINT) == 0
    assert '"stopped"' in server.stderr
    events = log_lines(server.stderr)
    loaded = [e for e in events if e.get("event") == "bundle_loaded"]
    assert len(loaded) == 1, server.stderr
    assert loaded[0]["path"] == str(plain_dir)
    assert (loaded[0]["bundle_name"], loaded[0]["revision"]) == ("plain", PLAIN_REVISION)
    assert (loaded[0]["policies"], loaded[0]["entities"]) == (5, 3)
    assert loaded[0]["warnings"] == [STRAY_WARNING] and loaded[0]["level"] == "warning"
    names = [e.get("event") for e in events]
    assert names.index("bundle_loaded") < names.index("listening")


def test_waiting_for_a_bundle_is_logged_as_json(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with ServerProcess(empty, "--wait-for-bundle") as server:
        assert server.stop() == 0
    waiting = [e for e in log_lines(server.stderr) if e.get("event") == "bundle_waiting"]
    assert [w["path"] for w in waiting] == [str(empty)]


def test_start_errors_are_json_naming_the_flag(plain_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "decisions.log"
    served = pdp_serve(str(plain_dir), "--listen", "127.0.0.1:0", "--decision-log", str(target))
    assert served.returncode == 1
    failed = start_failure(served)
    assert failed["message"] == f"--decision-log {target}: cannot open: No such file or directory"
    cert = tmp_path / "tls.crt"
    cert.write_text("not a certificate")
    served = pdp_serve(str(plain_dir), "--tls-cert", str(cert), "--tls-key", str(cert))
    assert served.returncode == 1
    assert start_failure(served)["message"].startswith(f"--tls-cert {cert}: ")


def _busy_port() -> socket.socket:
    """A port taken by a plain listening socket (closed by the caller)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_busy_port_is_not_shared(plain_server: ServerProcess, plain_dir: Path) -> None:
    """grpc enables SO_REUSEPORT by default; pdp turns it off, so the second server must fail."""
    address = plain_server.address
    assert address is not None
    second = pdp_serve(str(plain_dir), "--listen", address)
    assert second.returncode == 1, second.stderr
    assert start_failure(second)["message"] == (
        f"--listen {address}: cannot listen: address in use (another process is listening on it)"
    )
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AuthorizerStub(channel)
        assert stub.IsAuthorized(request(), timeout=TIMEOUT).decision == ALLOW


def test_a_busy_port_prints_no_raw_grpc_line(plain_dir: Path) -> None:
    """grpc's C core would print "E... add_port.cc] Failed to add port" on stderr."""
    with _busy_port() as holder:
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        for workers in ("1", "2"):
            served = pdp_serve(str(plain_dir), "--listen", address, "--workers", workers)
            assert served.returncode == 1, served.stderr
            assert "address in use" in start_failure(served)["message"]  # and only JSON lines
            assert "add_port" not in served.stderr and "Traceback" not in served.stderr


def test_an_address_no_interface_has_is_not_available(plain_dir: Path) -> None:
    served = pdp_serve(str(plain_dir), "--listen", "192.0.2.1:9191")  # TEST-NET-1, not ours
    assert served.returncode == 1, served.stderr
    assert start_failure(served)["message"] == (
        "--listen 192.0.2.1:9191: cannot listen: address not available "
        "(no network interface of this host has it)"
    )


def test_a_host_that_does_not_resolve_is_named(plain_dir: Path) -> None:
    served = pdp_serve(str(plain_dir), "--listen", "nonexistent.invalid:9191")
    assert served.returncode == 1, served.stderr
    message = start_failure(served)["message"]
    assert message.startswith(
        "--listen nonexistent.invalid:9191: cannot listen: host 'nonexistent.invalid' does not "
        "resolve"
    ), message


MALFORMED_LISTEN = [
    ("nonsense", "expected HOST:PORT, [IPv6]:PORT or unix:/path, got 'nonsense'"),
    ("127.0.0.1", "expected HOST:PORT, [IPv6]:PORT or unix:/path, got '127.0.0.1'"),
    (":9191", "expected HOST:PORT, [IPv6]:PORT or unix:/path, got ':9191'"),
    ("127.0.0.1:", "the port must be a number from 0 to 65535, got '127.0.0.1:'"),
    ("127.0.0.1:65536", "the port must be a number from 0 to 65535, got '127.0.0.1:65536'"),
    ("127.0.0.1:-1", "the port must be a number from 0 to 65535, got '127.0.0.1:-1'"),
    ("::1:9191", "an IPv6 address goes in brackets, as in [::1]:9191, got '::1:9191'"),
    ("[::g]:9191", "[::g] is not an IPv6 address, in '[::g]:9191'"),
    ("bad host:9191", "'bad host' is not a host name or IPv4 address, in 'bad host:9191'"),
    ("unix:", "expected unix:/path/to/socket, got 'unix:'"),
    ("unix:/" + "d" * 120, "a unix socket path is at most 107 bytes, got 121"),
]


@pytest.mark.parametrize(("listen", "why"), MALFORMED_LISTEN)
def test_a_malformed_listen_address_is_a_usage_error(
    plain_dir: Path, listen: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each refusal, from `pdp serve`'s own parser in this process (only parsed: a wrong pass
    must not serve); the process end to end is the next test."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", str(plain_dir), "--listen", listen])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert f"pdp serve: error: argument --listen: {why}" in err, err


@pytest.mark.parametrize(("listen", "why"), [MALFORMED_LISTEN[7]])
def test_a_malformed_listen_address_exits_2_as_a_process(
    plain_dir: Path, listen: str, why: str
) -> None:
    served = pdp_serve(str(plain_dir), "--listen", listen)
    assert served.returncode == 2, served.stderr
    assert f"pdp serve: error: argument --listen: {why}" in served.stderr
    assert "Traceback" not in served.stderr


@pytest.mark.parametrize("listen", ["localhost:0", "[::1]:0", "127.0.0.1:0"])
def test_each_listen_form_serves(plain_dir: Path, listen: str) -> None:
    if listen.startswith("["):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this host")
    with ServerProcess(plain_dir, listen=listen) as server:
        assert server.address is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            assert stub.IsAuthorized(request(), timeout=TIMEOUT).decision == ALLOW


def test_unix_socket_bind_failures_say_why(plain_dir: Path, tmp_path: Path) -> None:
    served = pdp_serve(str(plain_dir), "--listen", f"unix:{tmp_path}/nowhere/pdp.sock")
    assert served.returncode == 1, served.stderr
    assert start_failure(served)["message"] == (
        f"--listen unix:{tmp_path}/nowhere/pdp.sock: cannot listen: "
        f"directory {tmp_path}/nowhere does not exist"
    )
    regular = tmp_path / "file"
    regular.write_text("data")
    served = pdp_serve(str(plain_dir), "--listen", f"unix:{regular}")
    assert served.returncode == 1, served.stderr
    assert start_failure(served)["message"].endswith(f"{regular} exists and is not a socket")
    assert regular.read_text() == "data"


def test_metrics_on_a_busy_port_names_the_flag_and_cause(plain_dir: Path) -> None:
    with _busy_port() as holder:
        metrics = f"127.0.0.1:{holder.getsockname()[1]}"
        for workers in ("1", "2"):
            served = pdp_serve(
                str(plain_dir),
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                metrics,
                "--workers",
                workers,
            )
            assert served.returncode == 1, served.stderr
            assert start_failure(served)["message"] == (
                f"--metrics {metrics}: cannot listen: address in use "
                "(another process is listening on it)"
            )
            assert "Errno" not in served.stderr


def test_metrics_on_an_address_that_is_not_ours_names_the_flag(plain_dir: Path) -> None:
    served = pdp_serve(str(plain_dir), "--listen", "127.0.0.1:0", "--metrics", "192.0.2.1:9100")
    assert served.returncode == 1, served.stderr
    assert start_failure(served)["message"] == (
        "--metrics 192.0.2.1:9100: cannot listen: address not available "
        "(no network interface of this host has it)"
    )


def test_a_busy_unix_socket_is_not_taken_over(plain_dir: Path, tmp_path: Path) -> None:
    """grpc would unlink a live server's socket file and bind anew; pdp refuses instead."""
    listen = f"unix:{tmp_path}/pdp.sock"
    with ServerProcess(plain_dir, listen=listen) as first:
        second = pdp_serve(str(plain_dir), "--listen", listen)
        assert second.returncode == 1, second.stderr
        assert start_failure(second)["message"] == (
            f"--listen {listen}: cannot listen: another server is listening there"
        )
        with grpc.insecure_channel(listen) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            assert stub.IsAuthorized(request(), timeout=TIMEOUT).decision == ALLOW
        assert first.stop() == 0


def _refused(address: str) -> bool:
    """Whether a new call on a new channel is refused: the server is stopping (or gone)."""
    with grpc.insecure_channel(address) as channel:
        try:
            pb_grpc.AuthorizerStub(channel).GetStatus(pb.GetStatusRequest(), timeout=1)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAVAILABLE
    return False


def test_sigterm_lets_an_in_flight_call_finish(tmp_path: Path) -> None:
    """A Check held open by a key set fetch that the test holds (no CPU, no fixed sleep): SIGTERM
    while it is in flight; new calls are refused, and once the fetch is let through the held
    call is answered (allowed, with the fetched key), then the process exits 0."""
    jwks = FlakyJwks({"keys": [public_jwk(FAULT_KEY, "k1", "ES256")]})
    try:
        jwks.hang()  # the first fetch is held until released
        root = url_bundle(tmp_path / "bundle", jwks.url)
        flags = ("--grace", "60", "--watch", "off", "--decision-log", "off")
        with ServerProcess(root, *flags) as server:
            assert server.address is not None and server.process is not None
            with ext_authz(server.address) as stub:
                held = bearer(token("42", key=FAULT_KEY, kid="k1"))
                pending = stub.Check.future(check_request(*ORDERS, held), timeout=60)
                jwks.wait_held()  # the Check waits for its key set: in flight
                server.process.send_signal(signal.SIGTERM)
                wait_for(lambda: _refused(server.address or ""), what="new calls refused")
                assert not pending.done()  # still in flight while the server stops
                jwks.release()
                response = pending.result(timeout=60)
            assert response.status.code == 0, metadata_of(response)  # decided on the fetched key
            assert server.process.wait(timeout=30) == 0
    finally:
        jwks.close()
    assert '"stopping"' in server.stderr and '"stopped"' in server.stderr
