"""Caller values -> pdp.v1 messages: a value protobuf cannot carry is a BadRequest naming it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pdp.client import BadRequest, messages
from pdp.client.types import Request

LONE = "\ud800"  # a Python str may hold it; UTF-8 (and so protobuf) cannot

BUILDS: dict[str, tuple[Callable[[], Any], str]] = {
    "principal id": (
        lambda: messages.authz_request(("User", f"a{LONE}"), "readOrder", ("Order", "o")),
        "principal.id",
    ),
    "resource type": (
        lambda: messages.authz_request(("User", "a"), "readOrder", (f"Order{LONE}", "o")),
        "resource.type",
    ),
    "action": (
        lambda: messages.authz_request(("User", "a"), f"read{LONE}", ("Order", "o")),
        "action.id",
    ),
    "context text": (
        lambda: messages.authz_request(
            ("User", "a"), "readOrder", ("Order", "o"), context=f'{{"x": "{LONE}"}}'
        ),
        "context",
    ),
    "entities text": (
        lambda: messages.authz_request(
            ("User", "a"), "readOrder", ("Order", "o"), entities=f'[{{"x": "{LONE}"}}]'
        ),
        "entities",
    ),
    "batch item": (
        lambda: messages.batch_request(
            [(("User", "a"), "readOrder", ("Order", "o")), Request(("User", LONE), "r", ("O", "o"))]
        ),
        "requests[1].principal.id",
    ),
    "batch entities": (
        lambda: messages.batch_request([(("User", "a"), "r", ("O", "o"))], entities=LONE),
        "entities",
    ),
    "plan resource type": (
        lambda: messages.plan_request(("User", "a"), "listOrders", f"Order{LONE}"),
        "resource_type",
    ),
}


@pytest.mark.parametrize("case", sorted(BUILDS))
def test_a_lone_surrogate_is_a_bad_request_naming_the_field(case: str) -> None:
    build, field = BUILDS[case]
    with pytest.raises(BadRequest) as refused:
        build()
    assert refused.value.field == field
    assert "surrogate" in refused.value.message


def test_text_with_a_surrogate_pair_and_escapes_is_sent_as_it_is() -> None:
    emoji = "\U0001f600"  # one code point, not a pair of surrogates, in a Python str
    message = messages.authz_request(
        ("User", f"a{emoji}"), "readOrder", ("Order", "o"), context='{"x": "\\ud83d\\ude00"}'
    )
    assert message.principal.id == f"a{emoji}"
    assert message.context_json == '{"x": "\\ud83d\\ude00"}'
    # a structured context is written as JSON text with escapes: a lone surrogate in it
    # reaches the server, which names it (tests/e2e/client/test_client.py)
    built = messages.authz_request(("User", "a"), "r", ("O", "o"), context={"x": LONE})
    assert built.context_json == '{"x": "\\ud800"}'
