"""Decision log lines of real calls through `pdp serve`: fields, sinks, sampling, masking."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from pdp.cli.main import build_parser
from pdp.v1 import authorizer_pb2 as pb
from tests.support.cli import run_cli
from tests.support.observability import (
    TIMEOUT,
    file_entries,
    log_entries,
    make_bundle,
    parse_lines,
    request,
)
from tests.support.polling import wait_for
from tests.support.server import REPO, ServerProcess, authorizer_stub

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("decision-log")

CORE_FIELDS = {
    "time",
    "decision_id",
    "api",
    "bundle_name",
    "bundle_revision",
    "principal",
    "action",
    "resource",
    "decision",
    "determining_policies",
    "erroring_policies",
    "errors",
    "latency_us",
}
GATEWAY_FIELDS = {"method", "path", "route", "source_address", "identity_kind", "http_status"}


def test_is_authorized_lines_carry_every_field(stdout_server: ServerProcess) -> None:
    server, since = stdout_server, len(stdout_server.stdout_lines)
    with authorizer_stub(server.address) as stub:
        before = datetime.now(UTC) - timedelta(seconds=1)
        allow = stub.IsAuthorized(request(), timeout=TIMEOUT)
        deny = stub.IsAuthorized(
            request("User::bob", "Action::pay", 'Doc::we"ird', context={"amount": 500}),
            timeout=TIMEOUT,
        )
        entries = log_entries(server, 2, since)
        after = datetime.now(UTC) + timedelta(seconds=1)

    first, second = entries
    assert set(first) == CORE_FIELDS  # no gateway fields, no context unless configured
    assert first["api"] == "IsAuthorized"
    assert first["decision_id"] == allow.decision_id
    assert (first["bundle_name"], first["bundle_revision"]) == ("obs", "r1")
    assert allow.bundle_revision == "r1"
    assert first["principal"] == 'User::"alice"'
    assert first["action"] == 'Action::"read"'
    assert first["resource"] == 'Doc::"d1"'
    assert first["decision"] == "allow"
    assert first["determining_policies"] == ["alice-reads"] == list(allow.determining_policies)
    assert first["errors"] == [] and first["erroring_policies"] == []
    assert isinstance(first["latency_us"], int) and 0 < first["latency_us"] < 10_000_000
    assert first["time"].endswith("Z")
    assert before <= datetime.fromisoformat(first["time"]) <= after

    assert second["decision_id"] == deny.decision_id != first["decision_id"]
    assert second["decision"] == "deny"
    assert second["principal"] == 'User::"bob"'
    assert second["resource"] == 'Doc::"we\\"ird"'  # Cedar's own quoting, escapes included
    assert second["determining_policies"] == []


def test_batch_items_are_one_line_each_in_order(stdout_server: ServerProcess) -> None:
    batch = pb.BatchIsAuthorizedRequest(
        requests=[
            request(),
            pb.IsAuthorizedRequest(action=pb.EntityUid(type="Action", id="read")),  # malformed
            request("User::carol", "Action::pay", context={"amount": 5}),
        ]
    )
    server, since = stdout_server, len(stdout_server.stdout_lines)
    with authorizer_stub(server.address) as stub:
        response = stub.BatchIsAuthorized(batch, timeout=TIMEOUT)
        entries = log_entries(server, 3, since)

    assert [e["api"] for e in entries] == ["BatchIsAuthorized"] * 3
    assert [e["batch_index"] for e in entries] == [0, 1, 2]
    assert [e["decision_id"] for e in entries] == [r.decision_id for r in response.results]
    assert [e["decision"] for e in entries] == ["allow", "deny", "allow"]
    malformed = entries[1]
    assert malformed["principal"] is None and malformed["resource"] is None
    assert malformed["errors"] == ["invalid request: requests[1].principal: is required"]
    assert entries[2]["principal"] == 'User::"carol"'
    assert entries[2]["determining_policies"] == ["small-payments"]
    assert len({e["latency_us"] for e in entries}) == 1  # the latency of the whole call


def test_invalid_request_has_no_line_and_stderr_has_no_decisions(
    stdout_server: ServerProcess,
) -> None:
    server, since = stdout_server, len(stdout_server.stdout_lines)
    with authorizer_stub(server.address) as stub:
        with pytest.raises(grpc.RpcError) as caught:
            stub.IsAuthorized(pb.IsAuthorizedRequest(), timeout=TIMEOUT)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        response = stub.IsAuthorized(request(), timeout=TIMEOUT)
        entries = log_entries(server, 1, since)
    assert len(server.stdout_lines) == since + 1  # only the decision: nothing else on stdout
    assert all('"decision_id"' in line for line in server.stdout_lines)  # nor before it
    assert entries[0]["decision_id"] == response.decision_id
    assert response.decision_id not in server.stderr
    assert server.stderr_lines, "server logs go to stderr"
    for line in parse_lines(server.stderr_lines):
        assert "decision_id" not in line and line["logger"].startswith("pdp")


def test_file_sink_appends_and_stdout_stays_empty(bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    path.write_text('{"earlier": "line"}\n')
    with (
        ServerProcess(bundle, "--decision-log", str(path)) as server,
        authorizer_stub(server.address) as stub,
    ):
        ids = [stub.IsAuthorized(request(), timeout=TIMEOUT).decision_id for _ in range(3)]
        entries = file_entries(path, 4)
    assert entries[0] == {"earlier": "line"}  # appended, never truncated
    assert [e["decision_id"] for e in entries[1:]] == ids
    assert server.stdout == ""
    assert all(i not in server.stderr for i in ids)


def test_off_writes_nothing(bundle: Path) -> None:
    with (
        ServerProcess(bundle, "--decision-log", "off") as server,
        authorizer_stub(server.address) as stub,
    ):
        stub.IsAuthorized(request(), timeout=TIMEOUT)
    assert server.stdout == ""
    assert '"sink": "off"' in server.stderr


def test_deny_only_sampling_logs_every_deny_and_no_allow(bundle: Path) -> None:
    with (
        ServerProcess(bundle, "--decision-log-sample", "deny-only") as server,
        authorizer_stub(server.address) as stub,
    ):
        stub.IsAuthorized(request(), timeout=TIMEOUT)
        denied = stub.IsAuthorized(request("User::bob"), timeout=TIMEOUT)
        batch = stub.BatchIsAuthorized(
            pb.BatchIsAuthorizedRequest(requests=[request(), request("User::eve")]),
            timeout=TIMEOUT,
        )
        stub.IsAuthorized(request(), timeout=TIMEOUT)
        last_deny = stub.IsAuthorized(request("User::mallory"), timeout=TIMEOUT)
        entries = log_entries(server, 3)
        wait_for(lambda: last_deny.decision_id in server.stdout, what="the last deny")
    assert [e["decision_id"] for e in entries] == [
        denied.decision_id,
        batch.results[1].decision_id,
        last_deny.decision_id,
    ]
    assert len(server.stdout_lines) == 3
    assert entries[1]["batch_index"] == 1


def test_rate_sampling_logs_a_fraction_of_allows(bundle: Path) -> None:
    items = [request() for _ in range(200)] + [request("User::bob")]
    with (
        ServerProcess(bundle, "--decision-log-sample", "0.5") as server,
        authorizer_stub(server.address) as stub,
    ):
        response = stub.BatchIsAuthorized(
            pb.BatchIsAuthorizedRequest(requests=items), timeout=TIMEOUT
        )
        deny_id = response.results[-1].decision_id
        wait_for(lambda: deny_id in server.stdout, what="the deny")
    entries = parse_lines(server.stdout_lines)
    allows = [e for e in entries if e["decision"] == "allow"]
    assert entries[-1]["decision_id"] == deny_id
    assert 20 < len(allows) < 180  # 0.5 of 200: far from both ends (p < 1e-30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--decision-log-sample", "1.5"], "between 0 and 1"),
        (["--decision-log-sample", "some"], "deny-only"),
        (["--decision-log-buffer", "0"], "from 1 to 1000000"),
        (["--metrics", "9100"], "HOST:PORT"),
    ],
)
def test_bad_flags_are_usage_errors(
    bundle: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", str(bundle), *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_log_path_is_a_runtime_error(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "decisions.log"
    command = [sys.executable, "-m", "pdp", "serve", str(bundle), "--listen", "127.0.0.1:0"]
    result = subprocess.run(
        [*command, "--decision-log", str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "No such file or directory" in result.stderr
    assert result.stdout == ""


def test_lines_from_two_processes_on_one_file_stay_whole(tmp_path: Path) -> None:
    """Two servers append long lines (over PIPE_BUF) to one file at once: none interleave."""
    bundle = make_bundle(tmp_path / "bundle", decision_log={"context": True})
    path = tmp_path / "shared.log"
    padding = "x" * 6000
    batch = pb.BatchIsAuthorizedRequest(
        requests=[request(context={"pad": padding, "n": n}) for n in range(40)]
    )
    rounds = 8
    with (
        ServerProcess(bundle, "--decision-log", str(path)) as one,
        ServerProcess(bundle, "--decision-log", str(path)) as two,
    ):
        errors: list[BaseException] = []

        def hammer(address: str) -> None:
            try:
                with authorizer_stub(address) as stub:
                    for _ in range(rounds):
                        stub.BatchIsAuthorized(batch, timeout=TIMEOUT)
            except BaseException as exc:  # reported below, on the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(s.address,)) for s in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        entries = file_entries(path, 2 * rounds * 40)
    assert len(entries) == 2 * rounds * 40
    assert all(e["context"]["pad"] == padding for e in entries)
    assert len({e["decision_id"] for e in entries}) == len(entries)


def test_check_rejects_a_bad_decision_log_section(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", decision_log={"mask": ["card.number"]})
    result = run_cli("check", str(bundle))  # the command as a process: tests/cli/test_check.py
    assert result.returncode == 3, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "manifest.yaml:3" in output
    assert "decision_log.mask: 'card.number'" in output
