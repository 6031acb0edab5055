"""routes.yaml `dry_run: true` and the `shadow:` block: allowed answers, real decisions logged."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from pdp.authn.identity import key_lookup
from pdp.authn.jwks import Keyring
from pdp.bundle import CompiledBundle, load_bundle
from pdp.bundle.manifest import LogRules
from pdp.decisionlog.entry import CHECK, GatewayFields, Record, build_entry
from pdp.decisionlog.masking import Masker
from pdp.decisionlog.shadow import Shadow
from pdp.errors import BundleError
from pdp.gateway.check import check
from pdp.gateway.result import GatewayRequest
from pdp.live.store import BundleStore
from pdp.metrics import Metrics
from tests.support.gateway import bearer, token
from tests.support.paths import EXAMPLE_BUNDLE

LOOKUP = key_lookup(Keyring())
CANCEL = "  - name: cancel-order\n"


def bundle_with(tmp_path: Path, edit: str, extra: str = "") -> CompiledBundle:
    root = tmp_path / "orders"
    shutil.copytree(EXAMPLE_BUNDLE, root)
    routes = root / "routes.yaml"
    text = routes.read_text()
    assert CANCEL in text
    routes.write_text(text.replace(CANCEL, CANCEL + edit) + extra)
    return load_bundle(root)


def request(method: str, path: str, headers: dict[str, str]) -> GatewayRequest:
    return GatewayRequest(
        method, path, {k: (v,) for k, v in headers.items()}, source_address="10.0.0.9"
    )


def test_a_dry_run_route_answers_allow_and_logs_the_real_deny(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, "    dry_run: true\n")
    others_order = request("POST", "/api/orders/o-1001/cancel", bearer(token("43")))
    assert not check(load_bundle(EXAMPLE_BUNDLE), others_order, LOOKUP).allowed  # BOLA: 403
    answer = check(bundle, others_order, LOOKUP)
    assert answer.allowed and answer.http_status == 200
    assert answer.result.dry_run and not answer.result.decision.allowed
    assert answer.result.reason == "policy"
    assert answer.metadata["dry_run"] is True and answer.metadata["policy_decision"] == "deny"
    record = Record(
        CHECK,
        time.time(),
        0.001,
        bundle,
        (answer.result.decision,),
        (answer.result.request,),
        gateway=GatewayFields(**answer.result.gateway_fields()),
    )
    entry = build_entry(record, 0, Masker(LogRules()), LogRules())
    assert (entry["decision"], entry["http_status"], entry["dry_run"]) == ("deny", 200, True)

    # Other routes, and credentials that fail, are not dry runs.
    read = request("GET", "/api/orders/o-1001", bearer(token("77")))
    assert not check(load_bundle(EXAMPLE_BUNDLE), read, LOOKUP).allowed
    assert not check(bundle, read, LOOKUP).allowed
    refused = check(bundle, request("POST", "/api/orders/o-1001/cancel", bearer("junk")), LOOKUP)
    assert refused.http_status == 401
    own = check(bundle, request("POST", "/api/orders/o-1001/cancel", bearer(token("42"))), LOOKUP)
    assert own.allowed and not own.result.dry_run


@pytest.mark.parametrize(
    ("edit", "extra", "expected"),
    [
        ('    dry_run: "yes"\n', "", "dry_run must be true or false"),
        ("", "shadow:\n  routes: [no-such-route]\n", "no route is named 'no-such-route'"),
        ("", "shadow:\n  only: [cancel-order]\n", "only"),
    ],
)
def test_bad_settings_fail_the_bundle(tmp_path: Path, edit: str, extra: str, expected: str) -> None:
    with pytest.raises(BundleError, match=expected):
        bundle_with(tmp_path, edit, extra)


def test_the_shadow_block_limits_shadowing_to_its_routes(tmp_path: Path) -> None:
    live = bundle_with(tmp_path, "", "shadow:\n  routes: [cancel-order]\n")
    assert live.gateway is not None and live.gateway.shadow_routes == frozenset({"cancel-order"})
    store = BundleStore()
    store.activate(load_bundle(EXAMPLE_BUNDLE))
    shadow = Shadow(store, Metrics())
    shadow.start()
    forwarded: list[Record] = []
    records = []
    for method, path in (("POST", "/api/orders/o-1001/cancel"), ("GET", "/api/orders/o-1001")):
        answer = check(live, request(method, path, bearer(token("42"))), LOOKUP)
        record = Record(
            CHECK,
            time.time(),
            0.001,
            live,
            (answer.result.decision,),
            (answer.result.request,),
            gateway=GatewayFields(**answer.result.gateway_fields()),
        )
        records.append(record)
        shadow.submit(record, forwarded.append)
    shadow.stop(5)
    assert forwarded == records
    cancel, read = records
    assert cancel.shadow is not None and cancel.shadow[0]["decision"] == "allow"
    assert read.shadow is None  # not in the shadow block
