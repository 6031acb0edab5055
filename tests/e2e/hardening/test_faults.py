"""Fault injection, each bounded in time, loopback only: a JWKS endpoint down or hanging, a
decision log sink that blocks or breaks, SIGKILL in the middle of a reload, many connections."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from grpc_health.v1 import health_pb2

from pdp.authn.jwks import Keyring
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.bundles import run_pdp
from tests.support.clock import ManualClock
from tests.support.gateway import (
    bearer,
    check_request,
    metadata_of,
    public_jwk,
    token,
)
from tests.support.hardening import (
    TIMEOUT,
    allowed_request,
    assert_alive_and_serving,
    guarded_bundle,
    health,
    log_events,
    status,
)
from tests.support.jwks import CACHE, KEY, MIN_REFRESH, ORDERS, FlakyJwks, url_bundle
from tests.support.observability import metrics_address, scrape, value
from tests.support.polling import wait_for
from tests.support.server import InProcessServer, ServerProcess

JWKS_WAIT = 0.25  # how long a Check waits for a key set fetch (the server's default: 1 s)
BOUND = 2.0  # seconds any Check may take while the key set endpoint misbehaves


@pytest.fixture
def jwks() -> Iterator[FlakyJwks]:
    server = FlakyJwks({"keys": [public_jwk(KEY, "k1", "ES256")]})
    yield server
    server.close()


def timed_check(stub: ext_grpc.AuthorizationStub, kid: str) -> tuple[int, str, float]:
    """(gRPC status code, deny reason, seconds) of a Check with a token signed by KEY."""
    started = time.monotonic()
    response = stub.Check(check_request(*ORDERS, bearer(token("42", key=KEY, kid=kid))), timeout=30)
    reason = metadata_of(response).get("reason", "")
    return response.status.code, reason, time.monotonic() - started


def test_jwks_down_or_hanging_known_keys_verify_unknown_kids_fail_fast(
    jwks: FlakyJwks, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On an in-process server whose key sets read a manual clock: the cache expiring and the
    rate limit passing are clock steps; the fetches (refused, hanging) and the Check's bounded
    wait for a hanging one are real."""
    root = url_bundle(tmp_path / "bundle", jwks.url)
    clock = ManualClock()
    keys = {"keyring": Keyring(clock=clock), "jwks_wait_seconds": JWKS_WAIT}
    with (
        InProcessServer.over(root, f"unix:{tmp_path}/s", **keys) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = ext_grpc.AuthorizationStub(channel)
        authorizer = pb_grpc.AuthorizerStub(channel)
        code, _, _ = timed_check(stub, "k1")
        assert code == 0 and jwks.requests == 1  # fetched on first use, then cached

        jwks.down()  # connection refused
        clock.advance(CACHE + 0.1)  # the cached set is stale: every due refresh fails
        for _ in range(3):
            code, _, took = timed_check(stub, "k1")
            assert code == 0 and took < BOUND, took
            code, reason, took = timed_check(stub, "k-unknown")
            assert (code, reason) == (16, "unknown_kid") and took < BOUND, took
            clock.advance(MIN_REFRESH)
        assert jwks.requests == 1  # none of the refused fetches was ever accepted

        jwks.hang()  # accepts, never answers: a fetch would wait FETCH_TIMEOUT
        clock.advance(MIN_REFRESH + 0.1)
        before = jwks.requests
        answers: list[tuple[int, str, float]] = []
        threads = [
            threading.Thread(target=lambda k=k: answers.append(timed_check(stub, k)))
            for k in ("k1", "k-new", "k1", "k-other", "k1")
        ]
        for thread in threads:
            thread.start()
        # Meanwhile the event loop is free: other calls are answered at once.
        started = time.monotonic()
        assert authorizer.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).serving
        assert time.monotonic() - started < 0.5
        for thread in threads:
            thread.join(30)
        assert len(answers) == 5
        assert all(took < BOUND for _, _, took in answers), answers
        assert sorted((code, reason) for code, reason, _ in answers) == sorted(
            [(0, "")] * 3 + [(16, "unknown_kid")] * 2
        )
        assert jwks.requests - before == 1  # one fetch at a time, rate limited
        assert health(server.address) == health_pb2.HealthCheckResponse.SERVING
    waited = [r for r in caplog.records if getattr(r, "event", "") == "jwks_wait_exceeded"]
    assert waited and waited[0].wait_seconds == JWKS_WAIT  # it did wait, and gave up in time


class StdoutNeverRead(ServerProcess):
    """A server whose stdout (its decision log) is a pipe nobody reads."""

    def _drain(self, stream: Any, sink: list[str]) -> None:
        if sink is not self.stdout_lines:
            super()._drain(stream, sink)

    def read_at_last(self) -> None:
        """Start reading stdout (and drop it): the sink unblocks, so a stop need not wait out
        the decision log's flush timeout (that bounded wait is test_blocked_sink.py's)."""
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: stdout.read(), daemon=True).start()


def flood(address: str, calls: int) -> None:
    """pdp.v1 batches and Checks, every one answered well within its budget."""
    batch = pb.BatchIsAuthorizedRequest(requests=[allowed_request()] * 50)
    with grpc.insecure_channel(address) as channel:
        authorizer = pb_grpc.AuthorizerStub(channel)
        gateway = ext_grpc.AuthorizationStub(channel)
        for _ in range(calls):
            started = time.monotonic()
            results = authorizer.BatchIsAuthorized(batch, timeout=TIMEOUT).results
            assert [r.decision for r in results] == [pb.DECISION_ALLOW] * 50
            response = gateway.Check(check_request("GET", "/api/orders/o-1"), timeout=TIMEOUT)
            assert response.status.code != 0
            assert time.monotonic() - started < 1.0


def test_a_blocked_decision_log_pipe_never_stops_decisions(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle")
    args = ("--decision-log-buffer", "100", "--metrics", "127.0.0.1:0")
    server = StdoutNeverRead(bundle, *args).start()
    try:
        assert server.address is not None
        flood(server.address, 60)  # 3,060 decisions; a pipe holds a few hundred lines
        samples = scrape(metrics_address(server))
        assert value(samples, "pdp_decision_log_dropped_total", reason="queue_full") > 1000
        assert_alive_and_serving(server)
    finally:
        server.read_at_last()
        assert server.stop(timeout=20) == 0


def test_a_decision_log_reader_that_goes_away_never_stops_decisions(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle")
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    args = ("--decision-log", str(fifo), "--metrics", "127.0.0.1:0")
    server = ServerProcess(bundle, *args).start()
    try:
        assert server.address is not None
        flood(server.address, 5)
        os.close(reader)  # the collector dies: writes now fail with EPIPE
        flood(server.address, 20)
        samples = wait_for(
            lambda: (
                (s := scrape(metrics_address(server)))
                and value(s, "pdp_decision_log_dropped_total", reason="write_error") > 0
                and s
            ),
            what="write errors to be counted",
        )
        assert value(samples, "pdp_decisions_total", api="BatchIsAuthorized", decision="allow")
        assert_alive_and_serving(server)
    finally:
        assert server.stop(timeout=20) == 0


def many_policies(count: int, revision: str) -> dict[str, str]:
    """A bundle slow enough to build that a kill lands in the middle of it."""
    text = "".join(
        f'@id("p{i}")\npermit (principal == User::"u{i}", action == Action::"read", '
        f"resource) when {{ context has n && context.n == {i} }};\n"
        for i in range(count)
    )
    return {"policies.cedar": text, "manifest.yaml": f"name: slow\nrevision: {revision}\n"}


def test_sigkill_in_the_middle_of_a_reload_restarts_on_the_files_as_they_are(
    tmp_path: Path,
) -> None:
    root = guarded_bundle(tmp_path / "bundle", revision="r1")
    server = ServerProcess(root, "--watch", "off", "--decision-log", "off").start()
    assert server.address is not None and server.process is not None
    assert status(server.address).bundle_revision == "r1"
    for name, text in many_policies(4000, "r2").items():
        (root / name).write_text(text)
    server.process.send_signal(signal.SIGHUP)
    # The build of 4,000 policies is under way: no event marks its start, so a short real
    # wait; the check below fails if the kill came too late to prove anything.
    time.sleep(0.3)
    server.stop(signal.SIGKILL)
    assert server.process.returncode == -signal.SIGKILL
    assert not log_events(server, "reload_activated"), "the kill came too late to prove much"

    # The files are complete: a restart serves exactly them.
    with ServerProcess(root, "--decision-log", "off") as again:
        assert again.address is not None
        now = status(again.address)
        assert (now.bundle_revision, now.activations, now.last_error) == ("r2", 1, "")
        assert now.policy_count == 4000

        # Killed while the files are half written: a restart refuses to serve them at all.
        again.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        again.process.wait(10)  # type: ignore[union-attr]
    text = (root / "policies.cedar").read_text()
    (root / "policies.cedar").write_text(text[: len(text) // 2])
    (root / "manifest.yaml").write_text("name: slow\nrevision: r3\n")
    refused = run_pdp("serve", str(root), "--listen", "127.0.0.1:0", timeout=60)
    assert refused.returncode == 3
    assert "policies.cedar" in refused.stderr

    shutil.rmtree(root)
    guarded_bundle(root, revision="r4")
    with ServerProcess(root, "--decision-log", "off") as fixed:
        assert fixed.address is not None
        assert status(fixed.address).bundle_revision == "r4"


CONNECTIONS = 200


def test_many_concurrent_connections_are_all_answered(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle")

    async def one(address: str, index: int) -> tuple[int, int]:
        async with grpc.aio.insecure_channel(address) as channel:
            authorizer = pb_grpc.AuthorizerStub(channel)
            gateway = ext_grpc.AuthorizationStub(channel)
            message = allowed_request() if index % 2 else allowed_request(context_json="{}")
            decision = (await authorizer.IsAuthorized(message, timeout=30)).decision
            check = await gateway.Check(check_request("GET", f"/x/{index}"), timeout=30)
            return decision, check.status.code

    async def all_at_once(address: str) -> list[tuple[int, int]]:
        return await asyncio.gather(*(one(address, i) for i in range(CONNECTIONS)))

    with ServerProcess(bundle, "--decision-log", "off") as server:
        assert server.address is not None
        started = time.monotonic()
        answers = asyncio.run(all_at_once(server.address))
        elapsed = time.monotonic() - started
        assert_alive_and_serving(server)
    assert len(answers) == CONNECTIONS
    allowed = [d for d, _ in answers].count(pb.DECISION_ALLOW)
    assert allowed == CONNECTIONS // 2
    assert all(code == 7 for _, code in answers)  # the bundle has no routes: all denied
    assert elapsed < 30


def test_a_sighup_as_soon_as_the_server_listens_reloads_and_never_kills_it(
    tmp_path: Path,
) -> None:
    # SIGHUP's default action ends a process: the reload handler must be in place before
    # "listening" is logged, as the SIGTERM handler is.
    bundle = guarded_bundle(tmp_path / "bundle")
    for _ in range(3):
        with ServerProcess(bundle, "--watch", "off", "--decision-log", "off") as server:
            assert server.process is not None and server.address is not None
            server.process.send_signal(signal.SIGHUP)
            # Answering needs a thread of the process to run after the signal was sent, when
            # the kernel delivers it: a default action would have ended the process by then.
            assert health(server.address) == health_pb2.HealthCheckResponse.SERVING
            assert server.process.poll() is None, server.stderr[-2000:]
