"""The `--metrics` endpoint of a real `pdp serve`, scraped over HTTP as requests flow."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from tests.support.observability import (
    TIMEOUT,
    make_bundle,
    metrics_address,
    request,
    scrape,
    series,
    value,
)
from tests.support.polling import wait_for
from tests.support.server import ServerProcess, authorizer_stub

METRICS = ("--metrics", "127.0.0.1:0")


def test_counters_and_histograms_follow_the_requests(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    with (
        ServerProcess(bundle, *METRICS) as server,
        authorizer_stub(server.address) as stub,
    ):
        address = metrics_address(server)
        before = scrape(address)
        assert value(before, "pdp_decisions_total", api="IsAuthorized", decision="allow") == 0
        assert value(before, "pdp_request_duration_seconds_count", api="IsAuthorized") == 0

        for _ in range(3):
            stub.IsAuthorized(request(), timeout=TIMEOUT)
        stub.IsAuthorized(request("User::bob"), timeout=TIMEOUT)
        stub.BatchIsAuthorized(
            pb.BatchIsAuthorizedRequest(requests=[request(), request("User::bob")] * 5),
            timeout=TIMEOUT,
        )
        with pytest.raises(grpc.RpcError):
            stub.IsAuthorized(pb.IsAuthorizedRequest(), timeout=TIMEOUT)
        status = stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
        after = scrape(address)
        wait_for(
            lambda: value(scrape(address), "pdp_decision_log_written_total") == 14,
            what="14 entries written",
        )

    def decisions(api: str, decision: str) -> float:
        return value(after, "pdp_decisions_total", api=api, decision=decision)

    assert decisions("IsAuthorized", "allow") == 3
    assert decisions("IsAuthorized", "deny") == 1
    assert decisions("BatchIsAuthorized", "allow") == 5
    assert decisions("BatchIsAuthorized", "deny") == 5
    assert decisions("Check", "allow") == decisions("Check", "deny") == 0
    errors = value(after, "pdp_request_errors_total", api="IsAuthorized", code="INVALID_ARGUMENT")
    assert errors == 1

    # Every call is timed, errors included; a batch is one observation.
    count = value(after, "pdp_request_duration_seconds_count", api="IsAuthorized")
    assert count == 5
    assert value(after, "pdp_request_duration_seconds_bucket", api="IsAuthorized", le="+Inf") == 5
    assert 0 < value(after, "pdp_request_duration_seconds_sum", api="IsAuthorized") < 5 * TIMEOUT
    assert value(after, "pdp_request_duration_seconds_count", api="BatchIsAuthorized") == 1

    assert series(after, "pdp_bundle_info") == {
        frozenset({("name", "obs"), ("revision", "r1")}): 1.0
    }
    assert value(after, "pdp_bundle_activations_total") == 1
    assert value(after, "pdp_bundle_load_failures_total") == 0
    activated = status.activated_at.ToNanoseconds() / 1e9
    stamp = value(after, "pdp_bundle_last_activation_timestamp_seconds")
    assert stamp == pytest.approx(activated, abs=0.001)
    assert value(after, "pdp_decision_log_dropped_total", reason="queue_full") == 0
    assert value(after, "pdp_authn_failures_total") == 0
    assert value(after, "pdp_unknown_endpoint_requests_total") == 0


def test_reloads_and_load_failures_move_bundle_metrics(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", revision="r1")
    with ServerProcess(bundle, *METRICS, "--watch", "off") as server:
        address = metrics_address(server)
        first = scrape(address)
        assert value(first, "pdp_bundle_info", name="obs", revision="r1") == 1
        assert server.process is not None

        time.sleep(0.01)  # the subject: the next activation's timestamp must be a later one
        make_bundle(bundle, revision="r2")
        server.process.send_signal(signal.SIGHUP)

        def reloaded() -> dict | None:
            samples = scrape(address)
            return samples if value(samples, "pdp_bundle_activations_total") == 2 else None

        second = wait_for(reloaded, what="the second activation")
        assert series(second, "pdp_bundle_info") == {
            frozenset({("name", "obs"), ("revision", "r2")}): 1.0
        }
        later = value(second, "pdp_bundle_last_activation_timestamp_seconds")
        assert later > value(first, "pdp_bundle_last_activation_timestamp_seconds")

        (bundle / "broken.cedar").write_text("permit(principal, action, resource")
        server.process.send_signal(signal.SIGHUP)

        def failed() -> dict | None:
            samples = scrape(address)
            return samples if value(samples, "pdp_bundle_load_failures_total") == 1 else None

        third = wait_for(failed, what="a load failure")
        assert value(third, "pdp_bundle_activations_total") == 2
        assert value(third, "pdp_bundle_info", name="obs", revision="r2") == 1  # still serving
        assert value(third, "pdp_bundle_last_activation_timestamp_seconds") == later


def test_metrics_are_off_unless_asked_for(http_server: ServerProcess) -> None:
    """The worker's shared `pdp serve` (tests/conftest.py) has no --metrics: its start log
    never says that metrics listen."""
    assert '"listening"' in http_server.stderr  # its start log is all there
    assert "metrics_listening" not in http_server.stderr


def test_two_processes_aggregate_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `--workers N` will run: every process records into one directory, one serves."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    bundle = make_bundle(tmp_path / "bundle")
    with (
        ServerProcess(bundle, "--decision-log", "off") as worker,
        ServerProcess(bundle, "--decision-log", "off", *METRICS) as serving,
    ):
        with authorizer_stub(worker.address) as stub:
            for _ in range(3):
                stub.IsAuthorized(request(), timeout=TIMEOUT)
        with authorizer_stub(serving.address) as stub:
            for _ in range(2):
                stub.IsAuthorized(request("User::bob"), timeout=TIMEOUT)
        samples = scrape(metrics_address(serving))
    assert '"multiprocess": true' in serving.stderr
    assert value(samples, "pdp_decisions_total", api="IsAuthorized", decision="allow") == 3
    assert value(samples, "pdp_decisions_total", api="IsAuthorized", decision="deny") == 2
    assert value(samples, "pdp_request_duration_seconds_count", api="IsAuthorized") == 5
    assert value(samples, "pdp_bundle_activations_total") == 2  # one per process
    assert value(samples, "pdp_bundle_info", name="obs", revision="r1") == 1
    assert value(samples, "pdp_bundle_last_activation_timestamp_seconds") > 0
    assert len(list(shared.glob("counter_*.db"))) == 2
