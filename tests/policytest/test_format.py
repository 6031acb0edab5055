"""Suite and fixture files: what they mean, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from pdp.errors import SuiteError
from pdp.model import EntityRef
from pdp.policytest import load_plan, run_path
from tests.support.policytest_bundles import docs_bundle


def _plan(tmp_path: Path, suite: str, **kw):
    return load_plan(load_bundle(docs_bundle(tmp_path, {"s.yaml": suite}, **kw)))


def _problems(tmp_path: Path, suites: dict[str, str], **kw) -> list[str]:
    report = run_path(docs_bundle(tmp_path, suites, **kw))
    assert report.result is None, "expected the suites not to load"
    return [str(p) for p in report.load_problems]


def test_fixtures_are_shared_and_define_request_entities(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
        name: Docs
        cases:
          - name: bob reads archived
            principal: bob
            action: read
            resource: archived
            expect: deny
        """,
    )
    (case,) = plan.cedar_cases
    assert case.id == "Docs :: bob reads archived"
    assert case.principal == EntityRef("User", "bob")
    assert case.action == EntityRef("Action", "read")
    assert case.resource == EntityRef("Doc", "old")
    uids = sorted(e["uid"]["id"] for e in case.entities)
    assert uids == ["bob", "old"]  # both fixtures define an entity; alice's does not
    assert str(case.where) == "tests/s.yaml:4"
    assert plan.fixture_files == ("tests/fixtures/people.yaml",)


def test_entities_layer_fixture_then_suite_then_case(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
        entities:
          - bobs-doc
          - uid: Doc::"old"
            attrs: {owner: {__entity: {type: User, id: bob}}, archived: false}
        cases:
          - principal: bob
            action: read
            resource: archived
            expect: allow
          - principal: bob
            action: read
            resource: archived
            entities:
              - uid: {type: Doc, id: old}
                attrs: {owner: {__entity: {type: User, id: alice}}, archived: true}
            expect: deny
            name: case-level wins
        """,
    )
    first, second = plan.cedar_cases
    by_id = {e["uid"]["id"]: e for e in first.entities}
    assert set(by_id) == {"bob", "old", "bd"}
    assert by_id["old"]["attrs"]["archived"] is False  # the suite's replaces the fixture's
    by_id = {e["uid"]["id"]: e for e in second.entities}
    assert by_id["old"]["attrs"]["archived"] is True  # the case's replaces the suite's
    assert first.name == "bob read archived"  # a default name from the request


def test_suite_local_fixtures_shadow_shared_ones_and_contexts_resolve(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
        principals:
          alice: User::"someone-else"
        context: low
        cases:
          - {principal: alice, action: share, resource: d1, expect: deny}
          - {principal: alice, action: share, resource: d1, expect: allow, context: high,
             name: high}
          - {principal: alice, action: share, resource: d1, expect: allow,
             context: {level: 7}, name: inline}
        """,
    )
    low, high, inline = plan.cedar_cases
    assert low.principal == EntityRef("User", "someone-else")
    assert (low.context, high.context, inline.context) == ({"level": 1}, {"level": 9}, {"level": 7})


def test_matrix_expands_rows_and_columns_in_order(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
        matrices:
          - name: roles
            principals: [alice, bob, User::"root"]
            actions: [read, delete]
            resources: [d1, archived]
            expect:
              alice: [allow, allow, deny, deny]
              bob: deny
              User::"root": [allow, allow, allow, deny]
        """,
    )
    cases = plan.cedar_cases
    assert len(cases) == 12
    got = [(c.principal.id, c.action.id, c.resource.id, c.expect) for c in cases[:4]]
    assert got == [
        ("alice", "read", "d1", "allow"),
        ("alice", "read", "old", "allow"),
        ("alice", "delete", "d1", "deny"),
        ("alice", "delete", "old", "deny"),
    ]
    assert {c.expect for c in cases[4:8]} == {"deny"}
    assert cases[-1].name == 'roles: User::"root" delete archived'
    assert str(cases[-1].where) == "tests/s.yaml:10"  # the row of the table
    assert all(c.matrix == "roles" for c in cases)


def test_uids_in_every_written_form(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
        cases:
          - principal: {type: User, id: "42"}
            action: Action::"read"
            resource: {__entity: {type: Doc, id: d1}}
            expect: deny
          - principal: User::"a \\"quoted\\" id"
            action: read
            resource: Doc::"d1"
            expect: deny
        """,
        fixtures=False,
    )
    first, second = plan.cedar_cases
    assert first.principal == EntityRef("User", "42")
    assert first.resource == EntityRef("Doc", "d1")
    assert second.principal == EntityRef("User", 'a "quoted" id')


def test_http_cases_parse(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
        identities:
          alice: {claims: {sub: alice, roles: [admin]}}
        http:
          - name: get
            method: get
            path: /docs/d1?x=1
            headers: {X-Trace: abc, x-n: 5}
            identity: alice
            expect: allow
          - method: POST
            path: /stock
            identity: {spiffe: "spiffe://cluster.local/ns/shop/sa/checkout"}
            source_ip: 10.0.0.1
            expect: 403
          - {method: GET, path: /, expect: "401"}
        """,
    )
    get, post, anonymous = plan.http_cases
    assert (get.method, get.path, get.expect_decision) == ("GET", "/docs/d1?x=1", "allow")
    assert get.headers == (("x-trace", "abc"), ("x-n", "5"))
    assert get.identity.claims == {"sub": "alice", "roles": ["admin"]}
    assert post.identity.spiffe == "spiffe://cluster.local/ns/shop/sa/checkout"
    assert (post.expect_status, post.source_ip, post.name) == (403, "10.0.0.1", "POST /stock")
    assert anonymous.identity.anonymous and anonymous.expect_status == 401


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ("cases: [\n  {principal: alice\n", "tests/s.yaml:3:1: invalid YAML"),
        ("cases: " + "[" * 400 + "]" * 400, "tests/s.yaml:1: invalid YAML: nested too deeply"),
        (
            "cases:\n  - principal: alice\n    principal: bob\n",
            "tests/s.yaml:3:5: invalid YAML: duplicate key 'principal' (first on line 2)",
        ),
        ("- just a list\n", "tests/s.yaml:1: a suite must be a YAML mapping, not a list"),
        (
            "cases:\n  - principal: alice\n    action: read\n    resource: d1\n    expct: allow\n",
            "tests/s.yaml:5: unknown key 'expct' in case 0 (did you mean 'expect'?)",
        ),
        (
            "cases:\n  - principal: nobody\n    action: read\n    resource: d1\n"
            "    expect: allow\n",
            "tests/s.yaml:2: principal: unknown fixture 'nobody'",
        ),
        (
            "cases:\n  - {principal: alice, action: read, resource: d1, expect: maybe}\n",
            "tests/s.yaml:2: expect must be one of allow, deny, invalid, not the string 'maybe'",
        ),
        (
            "cases:\n  - principal: alice\n    action: read\n    resource: d1\n    expect: allow\n"
            "    determining: [owner-reed]\n",
            "tests/s.yaml:6: determining: no policy with id 'owner-reed' in the bundle "
            "(did you mean 'owner-read'?)",
        ),
        (
            "cases:\n  - principal: alice\n    action: read\n    resource: d1\n    expect: allow\n"
            "    context: {level: 1.5}\n",
            'tests/s.yaml:6: context: level: Cedar has no floats; write decimal("1.5")',
        ),
        (
            "cases:\n  - principal: User::alice\n    action: read\n    resource: d1\n"
            "    expect: allow\n",
            "tests/s.yaml:2: fixture 'principal': expected an entity uid like",
        ),
        (
            "matrices:\n  - name: m\n    principals: [alice, bob]\n    actions: [read, delete]\n"
            "    resources: [d1]\n    expect:\n      alice: [allow]\n      bob: deny\n",
            "tests/s.yaml:7: m: row 'alice' has 1 outcomes, expected 2",
        ),
        (
            "matrices:\n  - name: m\n    principals: [alice, bob]\n    actions: [read]\n"
            "    resources: [d1]\n    expect:\n      alice: allow\n      carol: deny\n",
            "tests/s.yaml:8: m: row 'carol' is not one of the principals",
        ),
        (
            "http:\n  - {method: GET, path: docs, expect: allow}\n",
            "tests/s.yaml:2: path must start with '/'",
        ),
        (
            "http:\n  - method: GET\n    path: /x\n    expect: 302x\n",
            "tests/s.yaml:4: expect must be allow, deny or an HTTP status like 401",
        ),
        (
            "http:\n  - method: GET\n    path: /x\n    expect: allow\n    identity: {spiffe: x}\n",
            "tests/s.yaml:5: spiffe must be a SPIFFE id",
        ),
        (
            "cases:\n  - {name: a, principal: alice, action: read, resource: d1, expect: allow}\n"
            "  - {name: a, principal: alice, action: read, resource: d1, expect: allow}\n",
            "tests/s.yaml:3: duplicate case name 'a' in this suite (first at tests/s.yaml:2)",
        ),
        (
            "name: nothing\n",
            "tests/s.yaml:1: a suite needs at least one of cases, matrices or http",
        ),
        (
            "cases:\n  - principal: alice\n    action: read\n    resource: d1\n    expect: allow\n"
            "    entities: [no-such-set]\n",
            "tests/s.yaml:6: case 0 entities: 'no-such-set' names no entity set",
        ),
    ],
)
def test_suite_errors_name_file_and_line(tmp_path: Path, suite: str, expected: str) -> None:
    problems = _problems(tmp_path, {"s.yaml": suite})
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        {
            "a.yaml": "cases:\n  - {principal: x, action: read, resource: d1, expect: allow}\n",
            "b.yaml": "cases:\n  - {principal: alice, action: read, resource: y, expect: no}\n",
            "fixtures/more.yaml": 'principals:\n  alice: User::"again"\n',
        },
    )
    assert any(p.startswith("tests/a.yaml:2: principal: unknown fixture 'x'") for p in problems)
    assert any(p.startswith("tests/b.yaml:2: resource: unknown fixture 'y'") for p in problems)
    assert any(p.startswith("tests/b.yaml:2: expect must be") for p in problems)
    assert any(
        "fixture 'alice' is defined twice (first at tests/fixtures/more.yaml:2)" in p
        or "fixture 'alice' is defined twice (first at tests/fixtures/people.yaml:2)" in p
        for p in problems
    ), problems


def test_template_ids_cannot_be_expected_as_determining(tmp_path: Path) -> None:
    root = docs_bundle(
        tmp_path,
        {
            "s.yaml": "cases:\n  - principal: alice\n    action: read\n    resource: d1\n"
            "    expect: allow\n    determining: [tpl]\n"
        },
    )
    template = '@id("tpl")\npermit (principal == ?principal, action, resource);\n'
    (root / "tpl.cedar").write_text(template)
    report = run_path(root)
    assert [str(p) for p in report.load_problems] == [
        "tests/s.yaml:6: determining: 'tpl' is a template; name one of its links (links.json)"
    ]


def test_suite_error_is_a_bundle_error_with_problems(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as raised:
        _plan(tmp_path, "cases: 3\n")
    assert raised.value.code == "suite_invalid"
    assert [str(p) for p in raised.value.problems] == [
        "tests/s.yaml:1: cases must be a list, not int 3"
    ]
