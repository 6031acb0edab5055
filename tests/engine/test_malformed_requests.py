"""Malformed requests to the engine: a RequestError naming the field, never another exception."""

from __future__ import annotations

import pytest

from pdp import engine, evaluation
from pdp.bundle import load_bundle
from pdp.errors import RequestError
from pdp.model import AuthzRequest, EntityRef
from tests.support.paths import EXAMPLE_BUNDLE

DEEP = "[" * 5000 + "]" * 5000  # past Python's recursion limit, not only Cedar's
ORDER_READ = (EntityRef("User", "42"), EntityRef("Action", "readOrder"), EntityRef("Order", "o-1"))
A_TENANT = '[{"uid": {"type": "Tenant", "id": "new"}, "attrs": {}, "parents": []}]'


@pytest.fixture(params=["subset", "copy"])
def merge(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Request entities merged by cutting a subset of the bundle's, or by Cedar's copy."""
    threshold = 0 if request.param == "subset" else 10**9
    monkeypatch.setattr(evaluation, "SUBSET_MIN_BUNDLE_ENTITIES", threshold)


def test_deeply_nested_request_entities(merge: None) -> None:
    bundle = load_bundle(EXAMPLE_BUNDLE)
    request = AuthzRequest(*ORDER_READ, entities_json=DEEP)
    with pytest.raises(RequestError) as caught:
        engine.decide(bundle, request)
    assert (caught.value.field, caught.value.message) == ("entities", "nested too deeply")
    (item,) = engine.decide_batch(bundle, [request], None)
    assert item.malformed and not item.allowed
    assert item.errors == ("invalid request: requests[0].entities: nested too deeply",)


def test_deeply_nested_context_beside_request_entities(merge: None) -> None:
    bundle = load_bundle(EXAMPLE_BUNDLE)
    request = AuthzRequest(*ORDER_READ, context_json=f'{{"a": {DEEP}}}', entities_json=A_TENANT)
    with pytest.raises(RequestError) as caught:  # the subset looks into the context first
        engine.decide(bundle, request)
    assert caught.value.field == "context_json"
    assert caught.value.message.startswith("recursion limit exceeded")
