"""Policies too deep for Cedar's JSON form (128 levels) still load, from their text, and decide."""

from __future__ import annotations

import json
from pathlib import Path

from pdp import engine
from pdp.bundle import load_bundle
from pdp.model import AuthzRequest, EntityRef

TERMS = 150  # each `&&` of a chain is one level of Cedar's JSON form


def _bundle(root: Path) -> Path:
    chain = " && ".join(f"context.n > {i - 1}" for i in range(TERMS))
    (root / "deep.cedar").write_text(
        f'@id("long-chain")\npermit (principal, action == Action::"read", resource)\n'
        f"when {{ {chain} }};\n"
        "forbid (principal, action, resource) when { context.boom.missing };\n"
        '@id("grant")\npermit (principal == ?principal, action, resource == ?resource);\n'
    )
    (root / "links.json").write_text(
        json.dumps(
            [
                {
                    "template_id": "grant",
                    "link_id": "grant-alice-d1",
                    "args": {"?principal": 'User::"alice"', "?resource": 'Doc::"d1"'},
                }
            ]
        )
    )
    return root


def _decide(bundle, principal: str, resource: str, context: dict) -> engine.Decision:
    request = AuthzRequest(
        principal=EntityRef("User", principal),
        action=EntityRef("Action", "read"),
        resource=EntityRef("Doc", resource),
        context_json=json.dumps(context),
    )
    return engine.decide(bundle, request)


def test_a_chain_too_deep_for_the_json_form_loads_and_decides(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path))
    assert [p.id for p in bundle.policies] == [
        "long-chain",
        "deep.cedar#1",
        "grant",
        "grant-alice-d1",
    ]
    allowed = _decide(bundle, "bob", "d0", {"n": TERMS, "boom": {}})
    assert allowed.allowed
    assert allowed.determining_policies == ("long-chain",)
    assert allowed.erroring_policies == ("deep.cedar#1",)  # the erroring forbid is skipped
    denied = _decide(bundle, "bob", "d0", {"n": TERMS - 2, "boom": {}})  # last term false
    assert not denied.allowed and denied.determining_policies == ()
    linked = _decide(bundle, "alice", "d1", {"n": 0, "boom": {}})
    assert linked.allowed and linked.determining_policies == ("grant-alice-d1",)
