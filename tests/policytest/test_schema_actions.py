"""Reading action declarations from schema text, checked against Cedar's own validator."""

from __future__ import annotations

import json

import cedarpy
import pytest

from pdp.model import EntityRef
from pdp.policytest.schema_actions import actions_from_schema, requestable
from tests.support.conformance import load_cases
from tests.support.paths import CONFORMANCE

CEDAR = """
// comments, annotations, quoted names, groups and a namespace
@doc("people")
entity User in [Group] = { "action": String, nested: { action: Long } };
entity Group;
type action_like = { action: String };
action "all";
action read, "write it" in ["all"] appliesTo { principal: User, resource: User };
namespace Shop::Orders {
  entity Order;
  @doc("reads; with a ; inside")
  action "list" appliesTo { principal: [User], resource: [Order], context: { q?: String } };
  action refund in [Action::"list", Shop::Orders::Action::"list"];
}
action "esc\\"aped\\u{41}";
"""


def test_cedar_syntax_actions() -> None:
    actions = actions_from_schema("s.cedarschema", CEDAR)
    assert [str(a.uid) for a in actions] == [
        'Action::"all"',
        'Action::"read"',
        'Action::"write it"',
        'Shop::Orders::Action::"list"',
        'Shop::Orders::Action::"refund"',
        'Action::"esc\\"apedA"',
    ]
    read = actions[1]
    assert read.applies and read.parents == (EntityRef("Action", "all"),)
    refund = actions[4]
    assert refund.parents == (EntityRef("Shop::Orders::Action", "list"),) * 2
    # "all" is a pure group; "list" has appliesTo, so stays although refund is in it
    assert [a.uid.id for a in requestable(actions)] == [
        "read",
        "write it",
        "list",
        "refund",
        'esc"apedA',
    ]


def test_json_schema_actions() -> None:
    text = json.dumps(
        {
            "": {"entityTypes": {}, "actions": {"a": {}, "b": {"memberOf": [{"id": "a"}]}}},
            "NS": {"entityTypes": {}, "actions": {"c": {"appliesTo": {}}}},
        }
    )
    actions = actions_from_schema("x.cedarschema.json", text)
    assert [(str(a.uid), a.applies) for a in actions] == [
        ('Action::"a"', False),
        ('Action::"b"', False),
        ('NS::Action::"c"', True),
    ]
    assert [a.uid.id for a in requestable(actions)] == ["b", "c"]


def test_unreadable_text_raises_value_error() -> None:
    with pytest.raises(ValueError):
        actions_from_schema("s.cedarschema", "action read appliesTo { principal: User ")


CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []


def test_every_conformance_schema_reads_and_every_action_is_known_to_cedar() -> None:
    """422 schemas (namespaces, escapes, groups): each action read is one Cedar recognizes,
    and every action the cases request is among those read."""
    checked = 0
    for case in CASES:
        name = case.meta.get("schema_file")
        if not name:
            continue
        text = (case.path / name).read_text()
        actions = actions_from_schema(name, text)
        known = {a.uid for a in actions}
        if actions:
            policies = "\n".join(
                f"permit (principal, action == {a.uid}, resource);" for a in actions
            )
            result = cedarpy.validate_policies(policies, cedarpy.Schema.from_str(text))
            assert not [e for e in result.errors if "unrecognized action" in e.error], case.name
        for request in case.requests:
            action = EntityRef(request["action"]["type"], request["action"]["id"])
            assert action in known, (case.name, action)
        checked += 1
    assert checked == len(CASES) == 422
