"""Coverage numbers on bundles where the right answer is known."""

from __future__ import annotations

from pathlib import Path

from pdp.bundle import load_bundle
from pdp.model import EntityRef
from pdp.policytest import run_bundle, run_path
from pdp.policytest.catalog import action_catalog
from tests.support.policytest_bundles import docs_bundle, write_bundle

HALF = """
cases:
  - {principal: alice, action: read, resource: d1, expect: allow}
  - {principal: bob, action: read, resource: d1, expect: deny}
  - {principal: root, action: delete, resource: d1, expect: allow}
  - {principal: root, action: read, resource: d1, expect: allow}
"""


def test_policy_coverage_counts_determining_cases(tmp_path: Path) -> None:
    report = run_path(docs_bundle(tmp_path, {"half.yaml": HALF}), coverage=True)
    coverage = report.coverage
    assert coverage is not None
    # owner-read (alice), admin-all (root twice); never: no-archived-delete, share-high-level
    assert {p.id: p.cases for p in coverage.policies} == {
        "owner-read": 1,
        "admin-all": 2,
        "no-archived-delete": 0,
        "share-high-level": 0,
    }
    assert (coverage.covered, coverage.total, coverage.percent) == (2, 4, 50.0)
    assert [p.id for p in coverage.uncovered] == ["no-archived-delete", "share-high-level"]


def test_action_coverage_from_a_cedar_schema(tmp_path: Path) -> None:
    report = run_path(docs_bundle(tmp_path, {"half.yaml": HALF}), coverage=True)
    coverage = report.coverage
    assert coverage is not None and coverage.action_source == "schema"
    rows = {str(a.action): (a.cases, a.allow, a.deny) for a in coverage.actions}
    assert rows == {
        'Action::"read"': (3, 2, 1),
        'Action::"delete"': (1, 1, 0),
        'Action::"share"': (0, 0, 0),
    }
    assert coverage.untested_actions == [EntityRef("Action", "share")]
    assert coverage.actions_without_deny == [EntityRef("Action", "delete")]


def test_full_coverage_and_the_minimum(tmp_path: Path) -> None:
    full = (
        HALF
        + """
  - {principal: root, action: delete, resource: archived, expect: deny}
  - {principal: alice, action: share, resource: d1, context: high, expect: allow}
  - {principal: alice, action: share, resource: d1, context: low, expect: deny}
"""
    )
    bundle = load_bundle(docs_bundle(tmp_path, {"full.yaml": full}))
    report = run_bundle(bundle, coverage_min=100)
    assert report.coverage is not None and report.coverage.percent == 100.0
    assert report.ok and report.coverage_ok
    assert report.coverage.untested_actions == [] and report.coverage.actions_without_deny == []
    # The same cases filtered down to the first four: 50 % is under a minimum of 60.
    low = run_bundle(bundle, patterns=["alice read", "bob read", "root delete d1", "root read"])
    assert low.coverage is None  # not asked for
    low = run_bundle(
        bundle,
        patterns=["alice read", "bob read", "root delete d1", "root read"],
        coverage_min=60,
    )
    assert low.result is not None and low.result.ok
    assert low.coverage is not None and low.coverage.percent == 50.0
    assert not low.coverage_ok and not low.ok


def test_templates_are_covered_through_their_links(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path,
        {
            "p.cedar": """
            @id("tpl")
            permit (principal == ?principal, action == Action::"view", resource == ?resource);
            @id("static")
            permit (principal == User::"admin", action, resource);
            """,
            "links.json": """
            [{"template_id": "tpl", "link_id": "a-views-1",
              "args": {"?principal": "User::\\"a\\"", "?resource": "Doc::\\"1\\""}},
             {"template_id": "tpl", "link_id": "b-views-2",
              "args": {"?principal": "User::\\"b\\"", "?resource": "Doc::\\"2\\""}}]
            """,
            "tests/t.yaml": """
            cases:
              - {principal: User::"a", action: view, resource: Doc::"1", expect: allow,
                 determining: [a-views-1]}
              - {principal: User::"a", action: view, resource: Doc::"2", expect: deny}
            """,
        },
    )
    coverage = run_path(root, coverage=True).coverage
    assert coverage is not None
    assert {p.id: (p.kind, p.cases) for p in coverage.policies} == {
        "tpl": ("template", 1),
        "static": ("static", 0),
        "a-views-1": ("link", 1),
        "b-views-2": ("link", 0),
    }
    assert (coverage.covered, coverage.total) == (1, 3)  # the template itself is not counted
    # No schema and no Action entities: the actions named in policy scopes.
    assert coverage.action_source == "policies"
    assert [str(a.action) for a in coverage.actions] == ['Action::"view"']


def test_actions_from_action_entities_leave_out_groups(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path,
        {
            "p.cedar": 'permit (principal, action in Action::"all", resource);\n',
            "entities.json": """
            [{"uid": {"type": "Action", "id": "all"}, "attrs": {}, "parents": []},
             {"uid": {"type": "Action", "id": "get"}, "attrs": {}, "parents": [
                {"type": "Action", "id": "all"}]},
             {"uid": {"type": "Action", "id": "put"}, "attrs": {}, "parents": [
                {"type": "Action", "id": "all"}]}]
            """,
        },
    )
    catalog = action_catalog(load_bundle(root))
    assert catalog.source == "entities"
    assert [str(a) for a in catalog.actions] == ['Action::"get"', 'Action::"put"']


def test_actions_of_a_json_schema_with_a_namespace_and_groups(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path,
        {
            "p.cedar": 'permit (principal, action == App::Action::"get", resource);\n',
            "app.cedarschema.json": """
            {"App": {
              "entityTypes": {"User": {}, "Doc": {}},
              "actions": {
                "all": {},
                "get": {"memberOf": [{"id": "all"}],
                        "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Doc"]}},
                "put": {"memberOf": [{"id": "all", "type": "App::Action"}],
                        "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Doc"]}}
              }}}
            """,
            "tests/t.yaml": """
            cases:
              - {principal: App::User::"u", action: get, resource: App::Doc::"d", expect: allow}
            """,
        },
    )
    report = run_path(root, coverage=True)
    assert report.ok, report.load_problems
    coverage = report.coverage
    assert coverage is not None and coverage.action_source == "schema"
    assert [str(a.action) for a in coverage.actions] == ['App::Action::"get"', 'App::Action::"put"']
    # The bare name `get` resolved to the schema's namespaced action.
    assert coverage.actions[0].cases == 1
    assert coverage.untested_actions == [EntityRef("App::Action", "put")]


def test_a_tested_action_the_bundle_does_not_know_is_listed(tmp_path: Path) -> None:
    suite = 'cases:\n  - {principal: root, action: Action::"nope", resource: d1, expect: invalid}\n'
    coverage = run_path(docs_bundle(tmp_path, {"t.yaml": suite}), coverage=True).coverage
    assert coverage is not None
    extra = [a for a in coverage.actions if not a.declared]
    assert [(str(a.action), a.cases) for a in extra] == [('Action::"nope"', 1)]
