"""Policy ids (`@id` or `<path>#<n>`, templates counted) and template links from links.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from pdp.bundle import CompiledBundle, load_bundle
from pdp.errors import BundleError
from tests.support.bundles import SCHEMA, write_bundle

MIXED = """\
permit (principal, action == Action::"readOrder", resource) when { false };

@id("owner-grant")
permit (principal == ?principal, action == Action::"readOrder", resource == ?resource);

forbid (principal, action == Action::"refundOrder", resource in ?resource);

// The fourth statement: its positional id counts the two templates before it.
forbid (principal, action == Action::"refundOrder", resource) when { false };
"""

ENTITIES = json.dumps(
    [
        {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "42"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "43"}, "attrs": {}, "parents": []},
        {
            "uid": {"type": "Order", "id": "o-1"},
            "attrs": {
                "owner": {"__entity": {"type": "User", "id": "42"}},
                "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
                "status": "placed",
                "total_cents": 100,
            },
            "parents": [{"type": "Tenant", "id": "acme"}],
        },
    ],
    indent=2,
)


def link(template_id: str, link_id: str, **args: str) -> dict[str, Any]:
    return {
        "template_id": template_id,
        "link_id": link_id,
        "args": {f"?{k}": v for k, v in args.items()},
    }


def links_json(*items: Any) -> str:
    return json.dumps(list(items), indent=2) + "\n"


def bundle_with_links(tmp_path: Path, links: str, **extra: str) -> Path:
    files = {
        "orders.cedarschema": SCHEMA,
        "orders/grants.cedar": MIXED,
        "entities.json": ENTITIES,
        "links.json": links,
        **extra,
    }
    return write_bundle(tmp_path / "bundle", files)


def problems_of(root: Path) -> list[str]:
    with pytest.raises(BundleError) as error:
        load_bundle(root)
    return [str(problem) for problem in error.value.problems]


def decide(
    bundle: CompiledBundle, principal: str, action: str, resource: str
) -> tuple[str, list[str]]:
    """Decide with cedarpy over the compiled handles, reasons mapped to bundle ids."""
    request = {"principal": principal, "action": action, "resource": resource, "context": {}}
    result = cedarpy.is_authorized(request, bundle.policy_set, bundle.entities, bundle.schema)
    reasons = [bundle.by_internal_id[r].id for r in result.diagnostics.reasons]
    return ("allow" if result.allowed else "deny"), reasons


def test_positional_ids_count_templates_and_use_the_relative_path(tmp_path: Path) -> None:
    root = bundle_with_links(
        tmp_path,
        links_json(
            link("owner-grant", "grant-43", principal='User::"43"', resource='Order::"o-1"')
        ),
    )
    bundle = load_bundle(root)
    assert [(p.id, p.kind, p.file, p.line) for p in bundle.policies] == [
        ("orders/grants.cedar#0", "static", "orders/grants.cedar", 1),
        ("owner-grant", "template", "orders/grants.cedar", 3),
        ("orders/grants.cedar#2", "template", "orders/grants.cedar", 6),
        ("orders/grants.cedar#3", "static", "orders/grants.cedar", 9),
        ("grant-43", "link", "links.json", 2),
    ]
    assert bundle.policies[-1].template_id == "owner-grant"
    assert (bundle.policy_count, bundle.link_count) == (2, 1)


def test_links_decide_with_their_link_id(tmp_path: Path) -> None:
    root = bundle_with_links(
        tmp_path,
        links_json(
            link("owner-grant", "grant-43-o-1", principal='User::"43"', resource='Order::"o-1"'),
            # A template named by its positional id, with a dict uid.
            link("orders/grants.cedar#2", "no-refunds-acme", resource='Tenant::"acme"'),
        ),
    )
    bundle = load_bundle(root)
    read = 'Action::"readOrder"'
    assert decide(bundle, 'User::"43"', read, 'Order::"o-1"') == ("allow", ["grant-43-o-1"])
    assert decide(bundle, 'User::"42"', read, 'Order::"o-1"') == ("deny", [])
    refund = 'Action::"refundOrder"'
    assert decide(bundle, 'User::"43"', refund, 'Order::"o-1"') == ("deny", ["no-refunds-acme"])


def test_link_dict_uids_are_accepted(tmp_path: Path) -> None:
    item = link("owner-grant", "grant", resource='Order::"o-1"')
    item["args"]["?principal"] = {"type": "User", "id": "43"}
    bundle = load_bundle(bundle_with_links(tmp_path, links_json(item)))
    assert decide(bundle, 'User::"43"', 'Action::"readOrder"', 'Order::"o-1"') == (
        "allow",
        ["grant"],
    )


def test_link_errors_are_located_by_line_and_all_reported(tmp_path: Path) -> None:
    good = link("owner-grant", "good", principal='User::"43"', resource='Order::"o-1"')
    root = bundle_with_links(
        tmp_path,
        links_json(
            good,
            link("owner-grnt", "typo", principal='User::"43"', resource='Order::"o-1"'),
            link("owner-grant", "half", principal='User::"43"'),
            link(
                "owner-grant",
                "extra",
                principal='User::"43"',
                resource='Order::"o-1"',
                action='Action::"x"',
            ),
            link("owner-grant", "bad-uid", principal="User:43", resource='Order::"o-1"'),
            {"template_id": "owner-grant", "args": {}},
            {**good},
        ),
    )
    assert problems_of(root) == [
        "links.json:10: link 'typo': unknown template 'owner-grnt' (templates: "
        "orders/grants.cedar#2, owner-grant)",
        "links.json:18: link 'half': args is missing \"?resource\" (template 'owner-grant' "
        'has "?principal" and "?resource")',
        "links.json:25: link 'extra': unknown slot \"?action\" (template 'owner-grant' has "
        '"?principal" and "?resource")',
        "links.json:34: link 'bad-uid': Failed to parse template slot \"?principal\" value as "
        "entity Uid: unexpected token `:`",
        "links.json:42: link #5: link_id must be a non-empty string",
        "links.json:46: duplicate policy id 'good' (first defined at links.json:2)",
    ]


def test_link_id_may_not_reuse_a_policy_id(tmp_path: Path) -> None:
    root = bundle_with_links(
        tmp_path,
        links_json(
            link("owner-grant", "owner-grant", principal='User::"43"', resource='Order::"o-1"')
        ),
    )
    assert problems_of(root) == [
        "links.json:2: duplicate policy id 'owner-grant' (first defined at orders/grants.cedar:3)"
    ]


def test_links_json_syntax_and_shape(tmp_path: Path) -> None:
    assert problems_of(bundle_with_links(tmp_path / "a", '[\n  {"template_id": }\n]\n')) == [
        "links.json:2:19: invalid JSON: Expecting value"
    ]
    assert problems_of(bundle_with_links(tmp_path / "b", '{"template_id": "x"}')) == [
        "links.json:1: must be a JSON array"
    ]


def test_links_are_validated_against_the_schema(tmp_path: Path) -> None:
    # A grant to a misspelt type, or with the slots swapped, would silently never match.
    root = bundle_with_links(
        tmp_path,
        links_json(
            link("owner-grant", "typo", principal='Usr::"43"', resource='Order::"o-1"'),
            link("owner-grant", "swapped", principal='Order::"o-1"', resource='User::"43"'),
        ),
    )
    assert problems_of(root) == [
        "links.json:2: schema validation: for policy `typo`, unrecognized entity type `Usr` "
        "(template 'owner-grant')",
        "links.json:2: schema validation: for policy `typo`, unable to find an applicable action "
        "given the policy scope constraints (template 'owner-grant')",
        "links.json:10: schema validation: for policy `swapped`, unable to find an applicable "
        "action given the policy scope constraints (template 'owner-grant')",
    ]
    relaxed = bundle_with_links(
        tmp_path / "off",
        links_json(link("owner-grant", "typo", principal='Usr::"43"', resource='Order::"o-1"')),
        **{"manifest.yaml": "validation: off\n"},
    )
    assert load_bundle(relaxed).link_count == 1
