"""pdp/memsize.py: every estimate is at least what the objects hold, and not wildly more."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.memsize import decision_bytes, request_bytes, text_bytes, value_bytes
from pdp.model import AuthzRequest, Decision, EntityRef
from tests.support.memory import deep_size

texts = st.text(st.characters(codec=None), max_size=300)  # any code point, surrogates too
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=40),
        st.dictionaries(texts, inner, max_size=40),
        st.lists(inner, max_size=5).map(tuple),
    ),
    max_leaves=200,
)


def close_above(estimate: int, held: int) -> None:
    assert held <= estimate <= 5 * held + 512, (estimate, held)


@settings(max_examples=80, deadline=None)
@given(value=values)
def test_a_value_is_estimated_at_or_above_what_it_holds(value: Any) -> None:
    close_above(value_bytes(value), deep_size(value))


@settings(max_examples=30, deadline=None)
@given(value=values)
def test_parsed_json_lists_over_allocate_within_the_estimate(value: Any) -> None:
    # json builds its lists by appending (over-allocated), as the Struct converter does
    try:
        parsed = json.loads(json.dumps(value))
    except (ValueError, UnicodeEncodeError):
        return
    close_above(value_bytes(parsed), deep_size(parsed))


@settings(max_examples=80, deadline=None)
@given(text=texts)
def test_a_text_is_estimated_at_or_above_its_size(text: str) -> None:
    close_above(text_bytes(text), deep_size(text))


@settings(max_examples=30, deadline=None)
@given(
    ids=st.lists(texts, min_size=3, max_size=3),
    context=st.one_of(st.none(), st.dictionaries(texts, values, max_size=10)),
    context_json=st.one_of(st.none(), texts),
    entities_json=st.one_of(st.none(), texts),
)
def test_a_request_is_estimated_at_or_above_what_it_holds(
    ids: list[str], context: Any, context_json: str | None, entities_json: str | None
) -> None:
    request = AuthzRequest(
        EntityRef("User", ids[0]),
        EntityRef("Action", ids[1]),
        EntityRef("Doc", ids[2]),
        context=context,
        context_json=context_json,
        entities_json=entities_json,
    )
    close_above(request_bytes(request), deep_size(request) - deep_size(type(request)))


@settings(max_examples=50, deadline=None)
@given(
    policies=st.lists(texts, max_size=20),
    errors=st.lists(texts, max_size=20),
    decision_id=texts,
)
def test_a_decision_is_estimated_at_or_above_what_it_holds(
    policies: list[str], errors: list[str], decision_id: str
) -> None:
    decision = Decision(
        False, tuple(policies), tuple(policies[:3]), tuple(errors), decision_id, "r"
    )
    close_above(decision_bytes(decision), deep_size(decision))


def test_a_large_error_counts_in_full() -> None:
    error = "error while evaluating policy `amount`: " + "x" * 60_000
    decision = Decision(False, (), ("amount",), (error,), "id", "r1")
    assert decision_bytes(decision) >= 60_000


def test_a_value_that_refers_to_itself_is_walked_once() -> None:
    cyclic: dict[str, Any] = {"a": [1, "x"]}
    cyclic["self"] = cyclic
    cyclic["a"].append(cyclic["a"])
    assert value_bytes(cyclic) >= deep_size(cyclic)
    request = AuthzRequest(EntityRef("U", "a"), EntityRef("A", "b"), EntityRef("D", "c"), cyclic)
    assert request_bytes(request) >= value_bytes(cyclic)
