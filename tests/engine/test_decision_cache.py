"""The exact decision cache: cached answers equal uncached ones, keys never collide, and no
decision outlives the bundle it was made on. Real bundles, real Cedar, hypothesis."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp import engine
from pdp.bundle import CompiledBundle, load_bundle
from pdp.decisioncache import DecisionCache, canonical_value, request_digest
from pdp.errors import RequestError
from pdp.live.store import BundleStore
from pdp.model import AuthzRequest, Decision, EntityRef
from tests.support.memory import deep_size

POLICIES = """
@id("owner") permit(principal, action == Action::"read", resource)
  when { resource has owner && resource.owner == principal };
@id("level") permit(principal, action == Action::"read", resource)
  when { context has level && context.level == 1 };
@id("flag") permit(principal, action == Action::"write", resource)
  when { context has flag && context.flag == true };
@id("text") permit(principal, action, resource)
  when { context has level && context.level == "1" };
@id("blocked") forbid(principal, action, resource)
  when { principal has blocked && principal.blocked };
@id("erroring") permit(principal, action == Action::"write", resource)
  when { principal.missing == 1 };
@id("admin") permit(principal in Group::"admins", action, resource);
"""
VARIANT = POLICIES.replace('@id("admin") permit', '@id("admin") forbid')


def entity(kind: str, uid: str, attrs: dict[str, Any], *parents: tuple[str, str]) -> dict[str, Any]:
    return {
        "uid": {"type": kind, "id": uid},
        "attrs": attrs,
        "parents": [{"type": t, "id": i} for t, i in parents],
    }


ENTITIES = [
    entity("Group", "admins", {}),
    entity("User", "root", {}, ("Group", "admins")),
    entity("Doc", "d1", {"owner": {"__entity": {"type": "User", "id": "alice"}}}),
]


def make_bundle(root: Path, policies: str, revision: str) -> CompiledBundle:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.cedar").write_text(policies)
    (root / "entities.json").write_text(json.dumps(ENTITIES))
    (root / "manifest.yaml").write_text(f"name: cache\nrevision: {revision}\n")
    return load_bundle(root)


@pytest.fixture(scope="module")
def bundles() -> list[CompiledBundle]:
    """Three bundles: two with the same manifest revision and different policies."""
    with tempfile.TemporaryDirectory() as tmp:
        return [
            make_bundle(Path(tmp) / "a", POLICIES, "r1"),
            make_bundle(Path(tmp) / "b", VARIANT, "r1"),  # a revision reused: content differs
            make_bundle(Path(tmp) / "c", VARIANT, "r2"),
        ]


def answer(decide: Any, *args: Any) -> tuple[Any, ...]:
    """What a caller sees, but the decision id: the decision, or the refusal."""
    try:
        d: Decision = decide(*args)
    except RequestError as exc:
        return ("error", exc.field, exc.message)
    except (TypeError, ValueError) as exc:  # not JSON at all: cedarpy's own json.dumps refuses
        return ("raised", type(exc).__name__)
    return (d.allowed, d.determining_policies, d.erroring_policies, d.errors, d.bundle_revision)


# --- requests: a small domain, so that repeats (hits) are frequent --------------------------

users = st.sampled_from(["alice", "bob", "root", 'a"b', "\u00e9"])
docs = st.sampled_from(["d1", "d2"])
levels = st.sampled_from([1, 1.0, "1", True, 2, 0, -0.0, None])
contexts = st.one_of(
    st.none(),
    st.fixed_dictionaries({"level": levels}),
    st.fixed_dictionaries({"flag": st.sampled_from([True, 1, "true"])}),
    st.dictionaries(st.sampled_from(["level", "flag", "x"]), levels, max_size=3),
)
context_texts = st.sampled_from(
    ['{"level":1}', '{"level": 1}', '{"level":"1"}', '{"level":1,"level":2}', "{", "[]"]
)
own_entities = st.sampled_from(
    [
        None,
        json.dumps([entity("User", "bob", {"blocked": True})]),
        json.dumps([entity("User", "bob", {"blocked": False})]),
        json.dumps([entity("User", "bob", {}, ("Group", "admins"))]),
        json.dumps([entity("Doc", "d1", {})]),  # conflicts with the bundle's d1
        "[",
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> AuthzRequest:
    as_text = draw(st.booleans())
    context = None if as_text else draw(contexts)
    return AuthzRequest(
        principal=EntityRef("User", draw(users)),
        action=EntityRef("Action", draw(st.sampled_from(["read", "write"]))),
        resource=EntityRef("Doc", draw(docs)),
        context=context,
        context_json=draw(context_texts) if as_text else None,
        entities_json=draw(own_entities),
    )


steps = st.lists(st.one_of(requests(), st.sampled_from([0, 1, 2])), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_cached_answers_equal_uncached_ones_across_reloads(
    bundles: list[CompiledBundle], steps: list[Any]
) -> None:
    store = BundleStore()
    cache = DecisionCache(8)
    store.subscribe(cache.status_listener)
    store.activate(bundles[0])
    asked: list[AuthzRequest] = []
    decided = 0
    for step in steps:
        if isinstance(step, int):  # a reload (the same bundle again keeps its decisions)
            swapped = bundles[step] is not store.current
            store.activate(bundles[step])
            assert len(cache) == 0 or not swapped
            continue
        bundle = store.current
        assert bundle is not None
        for request in (step, *asked[-3:], step):  # the same request again: a hit
            plain = answer(engine.decide, bundle, request)
            assert answer(cache.decide, bundle, request) == plain
        asked.append(step)
        decided += plain[0] != "error"
    assert cache.hits >= decided  # each request that decides was asked twice in a row


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(requests(), min_size=1, max_size=12),
    shared=st.sampled_from(
        [
            None,
            "[]",
            json.dumps(
                [
                    {
                        "uid": {"type": "User", "id": "alice"},
                        "attrs": {"blocked": True},
                        "parents": [],
                    }
                ]
            ),
            "[",
        ]
    ),
    which=st.sampled_from([0, 1, 2]),
)
def test_cached_batches_equal_uncached_ones(
    bundles: list[CompiledBundle], items: list[AuthzRequest], shared: str | None, which: int
) -> None:
    bundle = bundles[which]
    cache = DecisionCache(100)
    cache.activate(bundle)
    positions = list(range(3, 3 + len(items)))
    try:
        plain = engine.decide_batch(bundle, items, shared, positions)
    except RequestError as exc:
        with pytest.raises(RequestError) as refused:
            cache.decide_batch(bundle, items, shared, positions)
        assert str(refused.value) == str(exc)
        return
    for _ in range(2):  # cold, then (partly) warm
        cached = cache.decide_batch(bundle, items, shared, positions)
        assert [answer(lambda d: d, d) for d in cached] == [answer(lambda d: d, d) for d in plain]
        assert [d.malformed for d in cached] == [d.malformed for d in plain]
    # without shared entities, an item alone is the same question: answered from the batch's
    # entries, the same answer
    for item, decision in zip(items, plain, strict=True):
        if shared is None and not decision.malformed:
            assert answer(cache.decide, bundle, item) == answer(lambda d: d, decision)


def test_a_hit_is_the_same_decision_with_a_new_id_marked_cached(
    bundles: list[CompiledBundle],
) -> None:
    cache = DecisionCache(10)
    cache.activate(bundles[0])
    request = AuthzRequest(
        EntityRef("User", "root"), EntityRef("Action", "read"), EntityRef("Doc", "d2")
    )
    first = cache.decide(bundles[0], request)
    second = cache.decide(bundles[0], request)
    assert (cache.hits, cache.misses) == (1, 1)
    assert not first.cached and second.cached
    assert second.decision_id != first.decision_id
    assert second.allowed and second.determining_policies == ("admin",)
    assert answer(lambda d: d, first) == answer(lambda d: d, second)


def test_values_of_different_types_never_share_a_key(bundles: list[CompiledBundle]) -> None:
    bundle = bundles[0]

    def key(**fields: Any) -> bytes | None:
        base = {"principal": EntityRef("User", "alice"), "action": EntityRef("Action", "read"),
                "resource": EntityRef("Doc", "d1")}  # fmt: skip
        return request_digest(bundle, AuthzRequest(**{**base, **fields}))

    keys = [
        key(context={"level": 1}),
        key(context={"level": 1.0}),
        key(context={"level": "1"}),
        key(context={"level": True}),
        key(context={"level": [1]}),
        key(context={"level": {"1": 1}}),
        key(context_json='{"level":1}'),
        key(context_json='{"level": 1}'),
        key(context={}),
        key(),
        key(entities_json="[]"),
        key(entities_json=" []"),
        key(context_json="{}", entities_json=None),
    ]
    assert None not in keys
    assert len(set(keys)) == len(keys)
    # field boundaries: moving characters between fields changes the key
    a = AuthzRequest(EntityRef("User", "ab"), EntityRef("Action", "read"), EntityRef("Doc", "c"))
    b = AuthzRequest(EntityRef("User", "a"), EntityRef("Action", "read"), EntityRef("Doc", "bc"))
    c = AuthzRequest(EntityRef("User::x", "a"), EntityRef("Action", "read"), EntityRef("Doc", "c"))
    d = AuthzRequest(EntityRef("User", "x::a"), EntityRef("Action", "read"), EntityRef("Doc", "c"))
    assert len({request_digest(bundle, r) for r in (a, b, c, d)}) == 4
    # shared batch entities are not the item's own
    own = AuthzRequest(a.principal, a.action, a.resource, entities_json="[]")
    assert request_digest(bundle, a, "[]") != request_digest(bundle, own)
    # the same request on bundles of one manifest revision but other content
    assert request_digest(bundles[0], a) != request_digest(bundles[1], a)
    # key order in a structured context does not matter (a dict has no duplicates)
    assert key(context={"a": 1, "b": 2}) == key(context={"b": 2, "a": 1})


@pytest.mark.parametrize(
    "value",
    [
        {1: "a"},  # json would write the key as "1"
        {"a": {True: 1}},
        {"a": {1, 2}},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": b"bytes"},
        {"a": object()},
    ],
)
def test_contexts_without_an_exact_encoding_are_decided_never_cached(
    bundles: list[CompiledBundle], value: dict[Any, Any]
) -> None:
    assert canonical_value(value) is None
    cache = DecisionCache(10)
    cache.activate(bundles[0])
    request = AuthzRequest(
        EntityRef("User", "alice"), EntityRef("Action", "read"), EntityRef("Doc", "d1"), value
    )
    assert request_digest(bundles[0], request) is None
    for _ in range(2):
        assert answer(cache.decide, bundles[0], request) == answer(
            engine.decide, bundles[0], request
        )
    assert (cache.hits, cache.misses, len(cache)) == (0, 0, 0)


def test_a_cyclic_context_is_refused_by_the_encoder_not_looped_over() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert canonical_value(cyclic) is None


def test_the_cache_is_bounded_least_recently_used_first(bundles: list[CompiledBundle]) -> None:
    bundle = bundles[0]
    cache = DecisionCache(3)
    cache.activate(bundle)
    read, doc = EntityRef("Action", "read"), EntityRef("Doc", "d1")
    ask = [AuthzRequest(EntityRef("User", f"u{i}"), read, doc) for i in range(5)]
    for request in ask[:3]:
        cache.decide(bundle, request)
    cache.decide(bundle, ask[0])  # u0 is now the most recent
    cache.decide(bundle, ask[3])
    cache.decide(bundle, ask[4])  # u1 and u2 go
    assert len(cache) == 3
    hits = cache.hits
    for request in (ask[0], ask[3], ask[4]):
        assert cache.decide(bundle, request).cached
    assert not cache.decide(bundle, ask[1]).cached
    assert cache.hits == hits + 3


def test_no_decision_outlives_its_bundle(bundles: list[CompiledBundle]) -> None:
    old, new = bundles[0], bundles[1]  # the same revision "r1", admin permitted then forbidden
    store = BundleStore()
    cache = DecisionCache(10)
    store.subscribe(cache.status_listener)
    store.activate(old)
    root = AuthzRequest(
        EntityRef("User", "root"), EntityRef("Action", "read"), EntityRef("Doc", "d2")
    )
    assert cache.decide(old, root).allowed
    assert cache.decide(old, root).cached
    store.activate(new)
    assert len(cache) == 0
    fresh = cache.decide(new, root)
    assert not fresh.allowed and not fresh.cached
    # a call still deciding on the old bundle neither reads nor fills the new bundle's cache
    late = cache.decide(old, root)
    assert late.allowed and not late.cached
    assert cache.decide(new, root).cached and not cache.decide(new, root).allowed
    hits = cache.hits
    assert not cache.decide(old, root).cached
    assert cache.hits == hits


def test_size_zero_decides_every_time(bundles: list[CompiledBundle]) -> None:
    cache = DecisionCache(0)
    cache.activate(bundles[0])
    request = AuthzRequest(
        EntityRef("User", "root"), EntityRef("Action", "read"), EntityRef("Doc", "d2")
    )
    for _ in range(3):
        assert not cache.decide(bundles[0], request).cached
    assert (cache.hits, cache.misses, len(cache)) == (0, 0, 0)
    with pytest.raises(ValueError):
        DecisionCache(-1)


# A policy whose error quotes the request: Cedar's message for `decimal("...")` holds the text.
QUOTING = """@id("amount") permit(principal, action, resource)
  when { decimal(context.amount) > decimal("1.0") };"""


def quoting(user: str, amount: str) -> AuthzRequest:
    return AuthzRequest(
        EntityRef("User", user),
        EntityRef("Action", "read"),
        EntityRef("Doc", "d1"),
        context={"amount": amount},
    )


def test_decisions_bound_the_memory_they_hold_not_only_their_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distinct requests whose errors quote 50 KB of their own text: 10,000 such decisions
    would hold 500 MB; the cache keeps what fits its byte bound, the most recent first."""
    bound = 1024 * 1024
    monkeypatch.setattr("pdp.decisioncache.DECISIONS_MAX_BYTES", bound)
    bundle = make_bundle(tmp_path, QUOTING, "r1")
    cache = DecisionCache(10_000)
    cache.activate(bundle)
    asked = [quoting(f"u{i}", "x" * 50_000 + str(i)) for i in range(60)]  # ~3 MB of errors
    for request in asked:
        decision = cache.decide(bundle, request)
        assert decision.erroring_policies == ("amount",) and not decision.cached
    held = deep_size(cache._entries)
    assert held <= bound, f"{held / 2**20:.1f} MiB held for a {bound / 2**20:g} MiB bound"
    assert cache.decide(bundle, asked[-1]).cached  # the most recent are kept
    assert not cache.decide(bundle, asked[0]).cached  # the oldest went first
    cache.activate(None)
    assert len(cache) == 0 and deep_size(cache._entries) < 1024


def test_a_decision_alone_over_the_bound_is_decided_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pdp.decisioncache.DECISIONS_MAX_BYTES", 64 * 1024)
    bundle = make_bundle(tmp_path, QUOTING, "r1")
    cache = DecisionCache(10)
    cache.activate(bundle)
    small, large = quoting("a", "x"), quoting("b", "x" * 100_000)
    for _ in range(2):
        cache.decide(bundle, small)
        assert not cache.decide(bundle, large).cached
    assert cache.decide(bundle, small).cached
    assert len(cache) == 1
