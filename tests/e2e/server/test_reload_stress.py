"""50 alternating invalid and valid bundle changes under continuous load on a real server.

The server is in-process (the real gRPC server, reloader and inotify watcher, as `pdp serve`
wires them) with a 20 ms debounce instead of 150 ms: every change here is one atomic file
operation, so nothing needs the longer cool-down, and 50 of them no longer wait 7.5 s for it.
`pdp serve` itself reloading on changes is tests/server/test_reload.py's subject."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from pdp.bundle import load_bundle
from pdp.bundle.loader import read_bundle
from pdp.live.reload import Reloader
from pdp.live.store import BundleStore
from pdp.live.watcher import EventWatcher
from pdp.server.app import ServeConfig
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.kubelet import ConfigMapMount
from tests.support.reload import TIMEOUT, Load, replace_file, wait_status
from tests.support.server import InProcessServer

CHANGES = 50
DEBOUNCE = 0.02
KINDS = ("torn write", "configmap swap", "duplicate id", "manifest")
MAIN = {
    True: '@id("main")\npermit(principal == User::"alice", action == Action::"read", resource);\n',
    False: '@id("main")\npermit(principal == User::"bob", action == Action::"read", resource);\n',
}
EXTRA = {
    True: '@id("extra")\nforbid(principal == User::"alice", action, resource);\n',
    False: '@id("extra")\nforbid(principal == User::"mallory", action, resource);\n',
}
MID_POLICY = len('@id("main")\npermit(principal == User::')


class StressBundle:
    """A bundle of plain files plus a ConfigMap-mounted folder, changed one file at a time.

    Every change is atomic (rename, link swap, or truncate), so each state on disk is one the
    test designed: valid states are recorded by digest with the decision they must give.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.step = 0
        self.allow_main = True
        self.forbid_extra = False
        self.shared = ConfigMapMount(root / "shared")
        root.mkdir(parents=True)
        (root / "manifest.yaml").write_text("name: stress\n")
        (root / "main.cedar").write_text(self._main())
        (root / "dup.cedar").write_text(self._dup(valid=True))
        self.shared.write({"extra.cedar": self._extra()})
        self.valid: dict[str, int] = {}
        self.last_valid = self._record()

    def _main(self) -> str:
        return MAIN[self.allow_main] + f"// step {self.step}\n"

    def _extra(self) -> str:
        return EXTRA[self.forbid_extra] + f"// step {self.step}\n"

    def _dup(self, valid: bool) -> str:
        policy_id = f"dup-{self.step}" if valid else "main"
        return f'@id("{policy_id}")\npermit(principal == User::"nobody", action, resource);\n'

    def expected(self) -> int:
        allowed = self.allow_main and not self.forbid_extra
        return pb.DECISION_ALLOW if allowed else pb.DECISION_DENY

    def _record(self) -> str:
        digest = read_bundle(self.root).digest
        assert digest not in self.valid, "every valid state must be new"
        self.valid[digest] = self.expected()
        return digest

    def break_it(self, kind: str) -> None:
        """An invalid change of the file that the next `fix(kind)` repairs."""
        self.step += 1
        if kind == "torn write":
            os.truncate(self.root / "main.cedar", MID_POLICY)
        elif kind == "configmap swap":
            self.shared.write({"extra.cedar": '@id("extra")\nforbid(principal ==\n'})
        elif kind == "duplicate id":
            replace_file(self.root / "dup.cedar", self._dup(valid=False))
        else:
            replace_file(
                self.root / "manifest.yaml", f"name: stress\nvalidation: maybe # {self.step}\n"
            )

    def fix(self, kind: str) -> str:
        """A valid change that repairs what `break_it(kind)` broke; returns the new digest."""
        self.step += 1
        if kind == "torn write":
            self.allow_main = not self.allow_main
            replace_file(self.root / "main.cedar", self._main())
        elif kind == "configmap swap":
            self.forbid_extra = not self.forbid_extra
            self.shared.write({"extra.cedar": self._extra()})
        elif kind == "duplicate id":
            replace_file(self.root / "dup.cedar", self._dup(valid=True))
        else:
            replace_file(self.root / "manifest.yaml", f"name: stress\n# step {self.step}\n")
        self.last_valid = self._record()
        return self.last_valid


@contextmanager
def watched_server(root: Path) -> Iterator[InProcessServer]:
    """The bundle at `root` loaded, watched and served, as `pdp serve` does (shorter debounce)."""
    store = BundleStore()
    store.set_source(str(root))
    store.activate(load_bundle(root))
    reloader = Reloader(root, store)
    watcher = EventWatcher(root, reloader.request, debounce=DEBOUNCE)
    reloader.start()
    watcher.start()
    try:
        with InProcessServer(store, ServeConfig(bundle_path=str(root), listen="127.0.0.1:0")) as s:
            yield s
    finally:
        watcher.stop()
        reloader.stop()


def test_fifty_valid_and_invalid_changes_under_load(tmp_path: Path) -> None:
    bundle = StressBundle(tmp_path / "bundle")
    started = time.monotonic()
    with (
        watched_server(bundle.root) as server,
        grpc.insecure_channel(server.address) as channel,
        Load(server.address, threads=3, batch_threads=1) as load,
    ):
        stub = pb_grpc.AuthorizerStub(channel)
        status = wait_status(stub, lambda s: s.bundle_revision == bundle.last_valid)
        failures = status.load_failures
        for change in range(CHANGES):
            kind = KINDS[(change // 2) % len(KINDS)]
            if change % 2 == 0:
                bundle.break_it(kind)
                failures += 1
                status = wait_status(stub, lambda s, n=failures: s.load_failures == n)
                assert status.bundle_revision != "" and status.last_error, kind
            else:
                revision = bundle.fix(kind)
                status = wait_status(stub, lambda s, r=revision: s.bundle_revision == r)
                assert status.last_error == "", kind
        load.wait_for(lambda a: a.revision == bundle.last_valid)  # calls go on after it
        load.stop()
        final = stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    print(f"{CHANGES} changes, {len(load.answers)} decisions in {elapsed:.1f} s")

    assert load.errors == [], load.errors[:5]
    assert load.mixed_batches == []
    assert len(load.answers) >= CHANGES
    unknown = {a.revision for a in load.answers} - set(bundle.valid)
    assert unknown == set(), f"decisions from revisions that were never valid: {unknown}"
    wrong = [a for a in load.answers if a.decision != bundle.valid[a.revision]]
    assert wrong == [], f"{len(wrong)} decisions disagree with their revision's policies"
    seen = {a.revision for a in load.answers}
    assert len(seen) > CHANGES // 4, "the load did not run across the changes"
    assert final.bundle_revision == bundle.last_valid
    assert final.last_error == ""
    assert (final.activations, final.load_failures) == (1 + CHANGES // 2, CHANGES // 2)
