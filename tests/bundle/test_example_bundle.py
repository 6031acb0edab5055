"""The example bundle `policies/` is one a security engineer can copy: clean, strict, named."""

from __future__ import annotations

import json

import cedarpy

from pdp.bundle import load_bundle
from pdp.bundle.loader import read_bundle
from tests.support.paths import EXAMPLE_BUNDLE

POLICY_IDS = {
    "customer-read-own-order",
    "customer-cancel-own-order",
    "customer-list-own-orders",
    "users-call-order-list",
    "customer-lists-own-orders",
    "support-lists-tenant-orders",
    "admin-lists-all-orders",
    "support-read-tenant-orders",
    "delegated-order-read",
    "admin-call-admin-functions",
    "admin-functions-require-admin",
    "stock-service-reserve-stock",
    "checkout-reserve-stock",
    "reserve-stock-services-only",
    "anonymous-denied",
    "delegate-o-1001-to-43",
}


def test_loads_strictly_with_no_warnings() -> None:
    bundle = load_bundle(EXAMPLE_BUNDLE)
    assert bundle.warnings == ()
    assert bundle.name == "orders-api"
    assert bundle.validation == "strict"
    assert bundle.schema is not None
    assert bundle.revision == read_bundle(EXAMPLE_BUNDLE).digest  # no fixed revision


def test_every_policy_has_a_stable_readable_id() -> None:
    bundle = load_bundle(EXAMPLE_BUNDLE)
    assert {p.id for p in bundle.policies} == POLICY_IDS
    assert not [p.id for p in bundle.policies if "#" in p.id]  # none positional
    assert {p.file.split("/")[0] for p in bundle.policies if p.kind != "link"} == {
        "orders",
        "admin",
        "services",
        "baseline.cedar",
    }


def test_every_rule_is_explained_by_a_comment() -> None:
    for path in sorted(EXAMPLE_BUNDLE.rglob("*.cedar")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("@id("):
                assert lines[number - 1].startswith("//"), f"{path}:{number + 1} has no comment"


def test_policy_files_are_formatted() -> None:
    for path in sorted(EXAMPLE_BUNDLE.rglob("*.cedar")):
        text = path.read_text()
        assert cedarpy.format_policies(text, 80, 2) == text, path


def test_entities_have_the_cast_of_the_story() -> None:
    entities = json.loads((EXAMPLE_BUNDLE / "entities.json").read_text())
    uids = {(e["uid"]["type"], e["uid"]["id"]) for e in entities}
    for uid in [
        ("Tenant", "acme"),
        ("Role", "admin"),
        ("Role", "support"),
        ("Role", "stock-service"),
        ("User", "42"),
        ("User", "43"),
        ("Anonymous", "anonymous"),
    ]:
        assert uid in uids
    owners = {
        e["attrs"]["owner"]["__entity"]["id"] for e in entities if e["uid"]["type"] == "Order"
    }
    assert {"42", "43"} <= owners
