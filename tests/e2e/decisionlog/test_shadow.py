"""Shadow evaluation: same answers with and without it, every difference logged and counted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from pdp.bundle import load_bundle
from pdp.decisionlog.entry import IS_AUTHORIZED, Record
from pdp.decisionlog.shadow import Shadow
from pdp.live.store import BundleStore
from pdp.metrics import Metrics
from pdp.model import AuthzRequest, Decision, EntityRef
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.observability import (
    POLICIES,
    file_entries,
    make_bundle,
    metrics_address,
    request,
    scrape,
)
from tests.support.server import ServerProcess

MIX = [
    request(),  # alice-reads: allow live, deny in the candidate
    request(principal="User::bob"),  # deny in both
    request(action="Action::pay", context={"amount": 50}),  # allow in both
    request(action="Action::pay", context={"amount": 50, "banned": True}),  # deny in both
    request(principal="User::alice", resource="Doc::d2"),  # allow live, deny candidate
]


def answers(address: str) -> list[bytes]:
    """Every response of the mix, one by one and as a batch, without its random decision id."""
    out = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AuthorizerStub(channel)
        for item in MIX:
            answer = stub.IsAuthorized(item, timeout=10)
            answer.decision_id = ""
            out.append(answer.SerializeToString(deterministic=True))
        batch = stub.BatchIsAuthorized(pb.BatchIsAuthorizedRequest(requests=MIX), timeout=10)
        for result in batch.results:
            result.decision_id = ""
            out.append(result.SerializeToString(deterministic=True))
    return out


def test_answers_are_identical_and_every_difference_is_logged(tmp_path: Path) -> None:
    live = make_bundle(tmp_path / "live", revision="live")
    candidate = make_bundle(tmp_path / "candidate", revision="candidate")
    (candidate / "policies.cedar").write_text(
        POLICIES.replace('principal == User::"alice"', 'principal == User::"carol"')
    )
    plain_log, shadow_log = tmp_path / "plain.jsonl", tmp_path / "shadow.jsonl"
    with ServerProcess(live, "--decision-log", str(plain_log)) as plain:
        assert plain.address is not None
        without = answers(plain.address)
    flags = ["--shadow", str(candidate), "--decision-log", str(shadow_log)]
    with ServerProcess(live, *flags, "--metrics", "127.0.0.1:0") as shadowed:
        assert shadowed.address is not None
        with_shadow = answers(shadowed.address)
        entries = file_entries(shadow_log, 2 * len(MIX))
        samples = scrape(metrics_address(shadowed))
    assert with_shadow == without
    differing = [e for e in entries if e["shadow"]["decision"] != e["decision"]]
    assert len(differing) == 4  # two requests of the mix, asked twice
    assert {(e["decision"], e["shadow"]["decision"]) for e in differing} == {("allow", "deny")}
    assert all(e["bundle_revision"] == "live" for e in entries)
    assert all(e["shadow"]["bundle_revision"] == "candidate" for e in entries)
    assert all("alice-reads" in e["determining_policies"] for e in differing)
    assert all(e["shadow"]["determining_policies"] == [] for e in differing)
    mismatches = {
        dict(labels)["api"]: value
        for (name, labels), value in samples.items()
        if name == "pdp_shadow_mismatches_total"
    }
    assert mismatches == {"IsAuthorized": 2.0, "BatchIsAuthorized": 2.0}


def _record(bundle_store: BundleStore) -> Record:
    bundle = bundle_store.current
    assert bundle is not None
    question = AuthzRequest(
        EntityRef("User", "alice"), EntityRef("Action", "read"), EntityRef("Doc", "d1")
    )
    decision = Decision(True, ("alice-reads",), (), (), "id-1", bundle.revision)
    return Record(IS_AUTHORIZED, time.time(), 0.0, bundle, (decision,), (question,))


def test_a_candidate_that_raises_changes_nothing_and_the_line_still_goes(tmp_path: Path) -> None:
    store = BundleStore()
    store.activate(load_bundle(make_bundle(tmp_path / "b")))

    def broken(*args: object) -> list[Decision]:
        raise RuntimeError("candidate exploded")

    shadow = Shadow(store, Metrics(), decide=broken)
    shadow.start()
    forwarded: list[Record] = []
    record = _record(store)
    shadow.submit(record, forwarded.append)
    shadow.stop(5)
    assert forwarded == [record]
    assert record.decisions[0].allowed  # the live answer is untouched
    assert record.shadow == [{"error": "RuntimeError", "bundle_revision": "r1"}]


def test_a_hanging_candidate_never_blocks_the_caller(tmp_path: Path) -> None:
    store = BundleStore()
    store.activate(load_bundle(make_bundle(tmp_path / "b")))
    release = threading.Event()
    entered = threading.Event()

    def hangs(*args: object) -> list[Decision]:
        entered.set()
        release.wait()
        return []

    shadow = Shadow(store, Metrics(), capacity=2, decide=hangs)
    shadow.start()
    forwarded: list[Record] = []
    submitter = threading.Thread(
        target=lambda: [shadow.submit(_record(store), forwarded.append) for _ in range(10)]
    )
    submitter.start()
    submitter.join(10)
    assert not submitter.is_alive()  # ten submits while the candidate hangs: none waited
    assert entered.wait(10)
    # The queue holds at most 2: the rest went on to the log unshadowed.
    assert shadow.skipped >= 7 and all(r.shadow is None for r in forwarded)
    release.set()
    shadow.stop(5)
