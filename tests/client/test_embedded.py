"""pdp.embedded: the client's calls in-process, with hot reload, limits, decision log, metrics."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

from pdp.client import AuthorizerClient, BadRequest, ResourceExhausted, Unavailable
from pdp.embedded import AsyncAuthorizer, Authorizer
from pdp.errors import BundleError
from pdp.server.limits import Limits
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.reload import replace_file
from tests.support.server import ServerProcess

OWNER = ('User::"42"', "readOrder", ("Order", "o-1001"))
OTHER = ('User::"42"', "readOrder", ("Order", "o-1003"))
POLICY = 'permit (principal == User::"alice", action == Action::"read", resource);\n'


def _service(pdp, order_id: str) -> tuple[bool, tuple[str, ...]]:
    """What a service does with either kind of authorizer: the one line that differs is how
    `pdp` was made."""
    decision = pdp.is_authorized('User::"42"', "readOrder", ("Order", order_id))
    return decision.allowed, decision.determining_policies


def test_switching_between_sidecar_and_embedded_is_one_line(http_server: ServerProcess) -> None:
    """The sidecar: the worker's shared `pdp serve` over the example bundle (conftest.py)."""
    assert http_server.address is not None
    with AuthorizerClient(http_server.address) as sidecar, Authorizer(EXAMPLE_BUNDLE) as local:
        for order_id in ("o-1001", "o-1002", "o-1003", "o-2001"):
            assert _service(sidecar, order_id) == _service(local, order_id)
        assert sidecar.status().bundle_revision == local.status().bundle_revision
        remote_plan = sidecar.plan_resources('User::"support-sam"', "listOrders", "Order")
        local_plan = local.plan_resources('User::"support-sam"', "listOrders", "Order")
        assert (remote_plan.kind, remote_plan.condition, remote_plan.policies) == (
            local_plan.kind,
            local_plan.condition,
            local_plan.policies,
        )


def _bundle(folder: Path, policy: str = POLICY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policies.cedar").write_text(policy)
    return folder


def test_hot_reload_and_a_bad_bundle_keeps_the_last_good_one(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "bundle")
    alice = ('User::"alice"', "read", 'Doc::"d1"')
    bob = ('User::"bob"', "read", 'Doc::"d1"')
    with Authorizer(root) as pdp:
        assert pdp.is_authorized(*alice).allowed and not pdp.is_authorized(*bob).allowed
        first = pdp.status().bundle_revision
        # Renamed over the file as editors do: a write in place could be read half done (an
        # empty file is a bundle that denies everything, and would be the last good one).
        replace_file(root / "policies.cedar", POLICY.replace("alice", "bob"))
        wait_for(lambda: pdp.is_authorized(*bob).allowed, timeout=15, what="bob allowed")
        assert pdp.status().bundle_revision != first
        replace_file(root / "policies.cedar", "permit (principal,")  # broken
        wait_for(lambda: pdp.status().last_error != "", timeout=15, what="a last error")
        assert pdp.is_authorized(*bob).allowed  # the last good bundle decides on
        assert "policies.cedar" in pdp.status().last_error


def test_watch_false_reloads_on_request(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "bundle")
    with Authorizer(root, watch=False) as pdp:
        (root / "policies.cedar").write_text(POLICY.replace("alice", "bob"))
        assert not pdp.is_authorized('User::"bob"', "read", 'Doc::"d1"').allowed
        assert pdp.reload().activations == 2
        assert pdp.is_authorized('User::"bob"', "read", 'Doc::"d1"').allowed


def test_limits_apply_to_embedded_inputs() -> None:
    with Authorizer(EXAMPLE_BUNDLE, watch=False, limits=Limits(max_entities=1)) as pdp:
        entities = [
            {"uid": {"type": "X", "id": str(i)}, "attrs": {}, "parents": []} for i in range(2)
        ]
        with pytest.raises(ResourceExhausted) as refused:
            pdp.is_authorized(*OWNER, entities=entities)
        assert refused.value.field == "entities"
        assert "--max-entities" in refused.value.message
        deep: dict = {}
        for _ in range(40):
            deep = {"a": deep}
        with pytest.raises(ResourceExhausted) as refused:
            pdp.is_authorized(*OWNER, context={"path": deep})
        assert refused.value.field.startswith("context.path")


def test_bad_input_is_bad_request_as_from_the_client() -> None:
    with Authorizer(EXAMPLE_BUNDLE, watch=False) as pdp:
        with pytest.raises(BadRequest) as refused:
            pdp.is_authorized(*OWNER, context={"bogus": 1})
        assert refused.value.field == "context"
        decisions = pdp.batch_is_authorized([OWNER, ('User::"42"', "readOrder", ("", "x"))])
        assert decisions[1].errors[0].startswith("invalid request: requests[1].resource.type")


def test_decision_log_lines_and_metrics(tmp_path: Path) -> None:
    log = tmp_path / "decisions.log"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Authorizer(
        EXAMPLE_BUNDLE, watch=False, decision_log=log, metrics_address=f"127.0.0.1:{port}"
    ) as pdp:
        allowed = pdp.is_authorized(*OWNER)
        denied = pdp.is_authorized(*OTHER)
        plan = pdp.plan_resources('User::"42"', "listOrders", "Order")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            metrics = page.read().decode()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    by_id = {line["decision_id"]: line for line in lines}
    assert by_id[allowed.decision_id]["decision"] == "allow"
    assert by_id[denied.decision_id]["decision"] == "deny"
    assert by_id[plan.decision_id]["plan"]["kind"] == "CONDITIONAL"
    assert all(line["api"] in ("IsAuthorized", "PlanResources") for line in lines)
    assert 'pdp_decisions_total{api="IsAuthorized",decision="allow"} 1.0' in metrics


def test_threads_deciding_through_reloads_get_whole_answers(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "bundle")
    failures: list[str] = []
    stop = threading.Event()
    with Authorizer(root, watch=False) as pdp:
        revisions = {pdp.status().bundle_revision}

        def ask() -> None:
            while not stop.is_set():
                try:
                    decision = pdp.is_authorized('User::"alice"', "read", 'Doc::"d1"')
                except Exception as exc:  # any exception is the failure
                    failures.append(repr(exc))
                    return
                revision = decision.bundle_revision
                try:  # a new revision is known once its reload returns
                    wait_for(lambda r=revision: r in revisions, 5, revision, interval=0.01)
                except AssertionError:
                    failures.append(f"unknown revision {revision}")

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for turn in range(6):
            (root / "policies.cedar").write_text(POLICY + f"// turn {turn}\n")
            revisions.add(pdp.reload().bundle_revision)
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not failures, failures[:5]
    assert len(revisions) == 7


def test_a_bundle_that_does_not_load_raises_and_close_ends_calls(tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        Authorizer(_bundle(tmp_path / "bad", "permit ("))
    with pytest.raises(ValueError, match="decision_log"):
        Authorizer(EXAMPLE_BUNDLE, decision_log="-")
    pdp = Authorizer(EXAMPLE_BUNDLE, watch=False)
    pdp.close()
    with pytest.raises(Unavailable):
        pdp.is_authorized(*OWNER)
    assert not pdp.status().serving


def test_the_asyncio_form(tmp_path: Path) -> None:
    import asyncio

    shutil.copytree(EXAMPLE_BUNDLE, tmp_path / "b")

    async def main() -> None:
        async with AsyncAuthorizer(tmp_path / "b", watch=False) as pdp:
            assert (await pdp.is_authorized(*OWNER)).allowed
            assert [d.allowed for d in await pdp.batch_is_authorized([OWNER, OTHER])] == [
                True,
                False,
            ]
            assert (await pdp.status()).serving

    asyncio.run(main())
