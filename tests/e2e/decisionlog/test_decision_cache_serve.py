"""The decision cache in a real `pdp serve`: hits logged `cached`, counted, gone on reload."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pdp.cli.main import build_parser
from pdp.v1 import authorizer_pb2 as pb
from tests.support.gateway import bearer, check_request, ext_authz, token
from tests.support.observability import (
    POLICIES,
    TIMEOUT,
    log_entries,
    make_bundle,
    metrics_address,
    request,
    scrape,
    value,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import ServerProcess, authorizer_stub

CACHE = "pdp_decision_cache_total"


def answer(response: pb.IsAuthorizedResponse) -> tuple[object, ...]:
    return (
        response.decision,
        tuple(response.determining_policies),
        tuple(response.erroring_policies),
        tuple(response.errors),
        response.bundle_revision,
    )


def test_repeated_requests_are_answered_from_the_cache_until_a_reload(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    with (
        ServerProcess(bundle, "--metrics", "127.0.0.1:0", "--watch", "off") as server,
        authorizer_stub(server.address) as stub,
    ):
        pay = request("User::bob", "Action::pay", "Doc::d1", context={"amount": 5})
        first = stub.IsAuthorized(pay, timeout=TIMEOUT)
        second = stub.IsAuthorized(pay, timeout=TIMEOUT)
        other = stub.IsAuthorized(
            request("User::bob", "Action::pay", "Doc::d1", context={"amount": 500}),
            timeout=TIMEOUT,
        )
        batch = stub.BatchIsAuthorized(
            pb.BatchIsAuthorizedRequest(requests=[pay, request()]), timeout=TIMEOUT
        ).results
        entries = log_entries(server, 5)
        samples = scrape(metrics_address(server))
        assert answer(first) == answer(second) == answer(batch[0])
        assert first.decision == pb.DECISION_ALLOW and other.decision == pb.DECISION_DENY
        assert len({first.decision_id, second.decision_id, batch[0].decision_id}) == 3
        assert [e.get("cached", False) for e in entries] == [False, True, False, True, False]
        assert [e["decision_id"] for e in entries[:2]] == [first.decision_id, second.decision_id]
        assert value(samples, CACHE, result="hit") == 2
        assert value(samples, CACHE, result="miss") == 3

        # the same revision name, other content: a reload empties the cache
        (bundle / "policies.cedar").write_text(
            POLICIES.replace("context.amount < 100", "context.amount < 2")
        )
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: '"reload_activated"' in server.stderr, what="the reload")
        after = wait_for(
            lambda: (
                (r := stub.IsAuthorized(pay, timeout=TIMEOUT)).decision == pb.DECISION_DENY and r
            ),
            what="the new policies deciding",
        )
        assert after.bundle_revision == first.bundle_revision == "r1"
        entries = log_entries(server, 6)
        assert "cached" not in entries[-1]


def test_size_zero_decides_every_call(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    args = ("--metrics", "127.0.0.1:0", "--decision-cache-size", "0")
    with ServerProcess(bundle, *args) as server, authorizer_stub(server.address) as stub:
        for _ in range(3):
            stub.IsAuthorized(request(), timeout=TIMEOUT)
        entries = log_entries(server, 3)
        samples = scrape(metrics_address(server))
    assert not any("cached" in e for e in entries)
    assert value(samples, CACHE, result="hit") == value(samples, CACHE, result="miss") == 0


def test_check_is_cached_after_identity_and_route(tmp_path: Path) -> None:
    with ServerProcess(EXAMPLE_BUNDLE) as server, ext_authz(server.address) as stub:
        own = check_request("GET", "/api/users/42/orders", bearer(token("42")))
        responses = [stub.Check(own, timeout=TIMEOUT) for _ in range(2)]
        # a bad token for the same request never reaches the cache: identity comes first
        forged = token("42")[:-4] + "AAAA"
        refused = stub.Check(
            check_request("GET", "/api/users/42/orders", bearer(forged)), timeout=TIMEOUT
        )
        entries = log_entries(server, 3)
    assert [r.status.code for r in responses] == [0, 0]
    assert refused.status.code != 0 and refused.denied_response.status.code == 401
    assert [e.get("cached", False) for e in entries] == [False, True, False]
    assert entries[0]["determining_policies"] == entries[1]["determining_policies"] != []
    assert entries[0]["decision_id"] != entries[1]["decision_id"]
    assert entries[1]["route"] == "list-user-orders" and entries[1]["http_status"] == 200


@pytest.mark.parametrize("text", ["-1", "x", "1.5", "10000001"])
def test_bad_cache_sizes_are_usage_errors(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", str(tmp_path), "--decision-cache-size", text])
    assert exited.value.code == 2
    assert "--decision-cache-size" in capsys.readouterr().err
