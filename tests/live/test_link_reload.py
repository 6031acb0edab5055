"""A link whose target disappears fails the reload: the last good bundle, its forbid too, serves."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from pdp.engine import decide
from pdp.live.reload import ACTIVATED, FAILED, Reloader
from pdp.live.store import BundleStore
from pdp.live.watcher import EventWatcher, PollWatcher
from pdp.model import AuthzRequest, EntityRef
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.bundles import GUARD, guarded_bundle
from tests.support.cli import run_cli
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

DANGLING = "guard.cedar: dangling symlink, its target does not exist (-> .shared/guard.cedar)"
TIMEOUT = 10.0


def mallory_decision(store: BundleStore) -> tuple[str, list[str]]:
    request = AuthzRequest(
        principal=EntityRef("User", "mallory"),
        action=EntityRef("Action", "read"),
        resource=EntityRef("Doc", "d1"),
    )
    assert store.current is not None
    decision = decide(store.current, request)
    return decision.word, list(decision.determining_policies)


def test_the_reloader_keeps_the_forbid_when_its_link_starts_dangling(tmp_path: Path) -> None:
    root = guarded_bundle(tmp_path / "b")
    store = BundleStore()
    reloader = Reloader(root, store)
    assert reloader.reload("start").outcome == ACTIVATED
    good = store.current
    assert mallory_decision(store) == ("deny", ["guard"])

    (root / ".shared" / "guard.cedar").unlink()
    result = reloader.reload("edit")
    assert (result.outcome, result.errors) == (FAILED, (DANGLING,))
    assert store.current is good
    assert store.status.last_error == DANGLING
    assert mallory_decision(store) == ("deny", ["guard"])


@pytest.mark.parametrize("mode", ["events", "poll"])
def test_watched_reloads_fail_on_the_dangling_link(tmp_path: Path, mode: str) -> None:
    root = guarded_bundle(tmp_path / "b")
    store = BundleStore()
    reloader = Reloader(root, store)
    if mode == "events":
        watcher: EventWatcher | PollWatcher = EventWatcher(root, reloader.request, debounce=0.2)
    else:
        watcher = PollWatcher(root, reloader.request, interval=0.1, settle=0.1)
    reloader.start()
    watcher.start()
    try:
        wait_for(lambda: store.current is not None, what="the first bundle")
        good = store.current
        (root / ".shared" / "guard.cedar").unlink()
        if mode == "events":  # a hidden file is no trigger; the next edit of content is
            (root / "main.cedar").write_text((root / "main.cedar").read_text() + "// edit\n")
        # polling needs no other edit: the dangling link itself is a change of the listing
        wait_for(lambda: store.status.load_failures >= 1, what="a failed reload")
        assert store.current is good
        assert DANGLING in store.status.last_error
        assert mallory_decision(store) == ("deny", ["guard"])
    finally:
        watcher.stop()
        reloader.stop()


def test_pdp_serve_keeps_denying_and_reports_the_link(tmp_path: Path) -> None:
    root = guarded_bundle(tmp_path / "b")
    request = pb.IsAuthorizedRequest(
        principal=pb.EntityUid(type="User", id="mallory"),
        action=pb.EntityUid(type="Action", id="read"),
        resource=pb.EntityUid(type="Doc", id="d1"),
    )
    with ServerProcess(root) as server:
        assert server.address is not None
        with grpc.insecure_channel(server.address) as channel:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
            stub = pb_grpc.AuthorizerStub(channel)
            before = stub.IsAuthorized(request, timeout=TIMEOUT)
            assert before.decision == pb.DECISION_DENY
            assert list(before.determining_policies) == ["guard"]

            (root / ".shared" / "guard.cedar").unlink()
            (root / "main.cedar").write_text((root / "main.cedar").read_text() + "// edit\n")

            def reloaded() -> bool:  # failed, or (before the fix) activated without the forbid
                status = stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
                return status.load_failures >= 1 or status.activations > 1

            wait_for(reloaded, what="a reload")
            after = stub.IsAuthorized(request, timeout=TIMEOUT)
            assert after.decision == pb.DECISION_DENY
            status = stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
            assert status.last_error == DANGLING
            assert status.bundle_revision == before.bundle_revision
            assert list(after.determining_policies) == ["guard"]
            assert after.bundle_revision == before.bundle_revision

            shown = run_cli("status", "--address", server.address)
            assert DANGLING in shown.stdout

            # the target is back: the edited bundle activates, forbid included
            (root / ".shared" / "guard.cedar").write_text(GUARD)
            (root / "main.cedar").write_text((root / "main.cedar").read_text() + "// again\n")
            wait_for(
                lambda: stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).last_error == "",
                what="the reload that clears the error",
            )
            again = stub.IsAuthorized(request, timeout=TIMEOUT)
            assert again.bundle_revision != before.bundle_revision
            assert again.decision == pb.DECISION_DENY
    assert '"reload_failed"' in server.stderr and "dangling symlink" in server.stderr
