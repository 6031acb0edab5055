"""`pdp replay`: a decision log recorded by a real server, replayed against a changed bundle."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import grpc
import pytest

from pdp import engine
from pdp.bundle import load_bundle
from pdp.cli.main import main
from pdp.decisionlog.replay import MASKED, NOT_LOGGED
from pdp.model import AuthzRequest, EntityRef
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.observability import file_entries
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("replay")

PRINCIPALS = ["42", "43", "77", "support-sam", "support-gus", "admin-ada", "99"]
ACTIONS = ["readOrder", "cancelOrder", "refundOrder"]
ORDERS = ["o-1001", "o-1002", "o-1003", "o-2001"]
# A request-scoped user the bundle does not know: its roles come with the request.
GUEST = [
    {
        "uid": {"type": "User", "id": "99"},
        "parents": [{"type": "Role", "id": "support"}, {"type": "Tenant", "id": "acme"}],
        "attrs": {"tenant": {"__entity": {"type": "Tenant", "id": "acme"}}},
    }
]


def questions() -> list[AuthzRequest]:
    out = []
    for who in PRINCIPALS:
        for action in ACTIONS:
            for order in ORDERS:
                out.append(
                    AuthzRequest(
                        EntityRef("User", who),
                        EntityRef("Action", action),
                        EntityRef("Order", order),
                        context_json=json.dumps({"method": "POST", "path": f"/api/{order}"}),
                        entities_json=json.dumps(GUEST) if who == "99" else None,
                    )
                )
    return out


def as_proto(question: AuthzRequest) -> pb.IsAuthorizedRequest:
    def uid(ref: EntityRef) -> pb.EntityUid:
        return pb.EntityUid(type=ref.type, id=ref.id)

    return pb.IsAuthorizedRequest(
        principal=uid(question.principal),
        action=uid(question.action),
        resource=uid(question.resource),
        context_json=question.context_json or "",
        entities_json=question.entities_json or "",
    )


def record(bundle: Path, log: Path, *flags: str) -> int:
    """Serve `bundle`, ask every question (one by one, and once more as a batch)."""
    asked = questions()
    with ServerProcess(bundle, "--decision-log", str(log), *flags) as server:
        assert server.address is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            for question in asked:
                stub.IsAuthorized(as_proto(question), timeout=10)
            batch = pb.BatchIsAuthorizedRequest(requests=[as_proto(q) for q in asked])
            stub.BatchIsAuthorized(batch, timeout=10)
        file_entries(log, 2 * len(asked))
    return 2 * len(asked)


@pytest.fixture(scope="module")
def full_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    log = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    return log, record(EXAMPLE_BUNDLE, log, "--decision-log-requests", "full")


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with one policy gone: owners may no longer cancel their orders."""
    root = tmp_path_factory.mktemp("candidate") / "orders"
    shutil.copytree(EXAMPLE_BUNDLE, root)
    path = root / "orders" / "customers.cedar"
    text = path.read_text()
    without = re.sub(r'@id\("customer-cancel-own-order"\)\npermit \([^;]*;', "", text, flags=re.S)
    assert without != text
    path.write_text(without)
    return root


def replayed(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["replay", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_replay_reports_exactly_what_the_changed_policy_changes(
    full_log: tuple[Path, int], candidate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, count = full_log
    live, changed = load_bundle(EXAMPLE_BUNDLE), load_bundle(candidate)
    expected = {
        (str(q.principal), str(q.action), str(q.resource))
        for q in questions()
        if engine.decide(live, q).allowed != engine.decide(changed, q).allowed
    }
    assert 0 < len(expected) < len(questions())  # the change matters, but not everywhere

    code, report = replayed(capsys, str(log), "--bundle", str(candidate))
    assert code == 4
    assert report["decisions"] == report["replayed"] == count
    assert report["changed"] == 2 * len(expected)  # every question was asked twice
    assert report["not_replayable"] == {} and report["unreadable"] == 0
    for group in report["changes"]:
        assert (group["live"], group["candidate"]) == ("allow", "deny")
        assert group["live_policies"] == ["customer-cancel-own-order"]
        assert group["candidate_policies"] == []
        assert group["where"] == 'Action::"cancelOrder"'
        for example in group["examples"]:
            key = (example["principal"], 'Action::"cancelOrder"', example["resource"])
            assert key in expected


def test_replay_against_the_live_bundle_changes_nothing(
    full_log: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    log, count = full_log
    code, report = replayed(capsys, str(log), "--bundle", str(EXAMPLE_BUNDLE))
    assert code == 0
    assert (report["replayed"], report["changed"], report["unchanged"]) == (count, 0, count)


def test_the_text_report_names_the_policy_and_examples(
    full_log: tuple[Path, int], candidate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(full_log[0]), "--bundle", str(candidate)]) == 4
    out = capsys.readouterr().out
    assert "allow -> deny" in out and "live policies:      customer-cancel-own-order" in out
    assert "e.g. User::" in out


def test_default_logs_are_not_replayable_and_never_guessed(
    tmp_path: Path, candidate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "default.jsonl"
    count = record(EXAMPLE_BUNDLE, log)
    code, report = replayed(capsys, str(log), "--bundle", str(candidate))
    assert code == 0
    assert report["replayed"] == 0 and report["not_replayable"] == {NOT_LOGGED: count}


def test_masked_inputs_are_not_replayable(
    tmp_path: Path, candidate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "masked"
    shutil.copytree(EXAMPLE_BUNDLE, bundle)
    manifest = bundle / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "decision_log:\n  mask: [context.path]\n")
    log = tmp_path / "masked.jsonl"
    count = record(bundle, log, "--decision-log-requests", "full")
    entries = file_entries(log, count)
    assert all(e["context"]["path"] == "[masked]" for e in entries)
    _, report = replayed(capsys, str(log), "--bundle", str(candidate))
    assert report["not_replayable"] == {MASKED: count}


def test_unreadable_lines_and_a_bad_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "junk.jsonl"
    log.write_text('not json\n{"decision": "allow"}\n[1]\n\n')
    code, report = replayed(capsys, str(log), "--bundle", str(EXAMPLE_BUNDLE))
    assert code == 0 and report["unreadable"] == 2 and report["lines"] == 3
    assert report["not_replayable"] == {
        "no Cedar request (authentication failure or unknown route)": 1
    }
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.cedar").write_text("permit (")
    assert main(["replay", str(log), "--bundle", str(broken)]) == 3
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--bundle", str(EXAMPLE_BUNDLE)]) == 1
