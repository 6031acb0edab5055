"""The runner: decisions as the engine makes them, failures that say why, batching, filters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pdp import engine
from pdp.bundle import load_bundle
from pdp.errors import RequestError
from pdp.model import AuthzRequest, Decision
from pdp.policytest import EngineChecker, load_plan, run, run_bundle, run_path
from pdp.policytest.runner import errors_match
from tests.support.policytest_bundles import docs_bundle, write_bundle

PASSING = """
name: Docs
cases:
  - {name: owner reads, principal: alice, action: read, resource: d1, expect: allow,
     determining: [owner-read]}
  - {name: stranger, principal: bob, action: read, resource: d1, expect: deny, determining: []}
  - {name: archived, principal: root, action: delete, resource: archived, expect: deny,
     determining: [no-archived-delete]}
  - {name: share, principal: alice, action: share, resource: d1, context: high, expect: allow}
"""

FAILING = """
name: Wrong
cases:
  - {name: bola, principal: bob, action: read, resource: d1, expect: allow}
  - {name: wrong reason, principal: root, action: read, resource: d1, expect: allow,
     determining: [owner-read]}
  - {name: right, principal: alice, action: read, resource: d1, expect: allow}
"""


def test_a_passing_suite_passes(tmp_path: Path) -> None:
    report = run_path(docs_bundle(tmp_path, {"pass.yaml": PASSING}))
    assert report.ok and report.result is not None
    assert (report.result.passed, report.result.failed, report.result.skipped) == (4, 0, 0)


def test_a_failing_suite_says_expected_and_actual(tmp_path: Path) -> None:
    report = run_path(docs_bundle(tmp_path, {"fail.yaml": FAILING}))
    assert not report.ok and report.result is not None
    bola, reason, right = report.result.results
    assert bola.status == "failed" and bola.messages == ("expected allow, got deny",)
    assert reason.status == "failed"
    assert reason.messages == ("determining policies: expected [owner-read], got [admin-all]",)
    assert reason.determining == ("admin-all",)
    assert right.status == "passed"


def test_runner_decides_exactly_as_the_engine(tmp_path: Path) -> None:
    """Batched by request entities, yet every decision equals a single engine.decide."""
    bundle = load_bundle(
        docs_bundle(
            tmp_path,
            {
                "m.yaml": """
                matrices:
                  - name: all
                    principals: [alice, bob, root, User::"carol"]
                    actions: [read, delete, share]
                    resources: [d1, archived, Doc::"nope"]
                    context: low
                    expect: {alice: deny, bob: deny, root: deny, User::"carol": deny}
                """
            },
        )
    )
    plan = load_plan(bundle)
    result = run(plan, EngineChecker(bundle))
    assert len(result.results) == 36
    assert {r.actual for r in result.results} == {"allow", "deny", "invalid"}
    for item in result.results:
        case = item.case
        request = AuthzRequest(
            case.principal,
            case.action,
            case.resource,
            context=case.context,
            entities_json=json.dumps(list(case.entities)) if case.entities else None,
        )
        try:
            single = engine.decide(bundle, request)
        except RequestError:
            assert item.actual == "invalid", case.name
            continue
        assert item.actual == single.word, case.name
        assert item.determining == single.determining_policies, case.name


class CountingChecker:
    """A checker that records its batches and answers allow to everything."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, str | None]] = []

    def check(self, requests: Sequence[AuthzRequest], entities_json: str | None) -> list[Decision]:
        self.batches.append((len(requests), entities_json))
        return [Decision(True, ("fake",), (), (), "id", "rev") for _ in requests]


def test_runner_only_needs_a_one_method_checker_and_batches_by_entities(tmp_path: Path) -> None:
    bundle = load_bundle(docs_bundle(tmp_path, {"pass.yaml": PASSING}))
    checker = CountingChecker()
    result = run(load_plan(bundle), checker)
    # alice+d1 (no entities) x2, bob (fixture entity), root+archived (fixture entity)
    assert sorted(n for n, _ in checker.batches) == [1, 1, 2]
    assert sum(1 for _, e in checker.batches if e is None) == 1
    assert [r.actual for r in result.results] == ["allow"] * 4
    assert [r.status for r in result.results] == ["failed", "failed", "failed", "passed"]
    assert result.results[0].messages == (
        "determining policies: expected [owner-read], got [fake]",
    )


def test_malformed_requests_are_invalid_not_deny(tmp_path: Path) -> None:
    report = run_path(
        docs_bundle(
            tmp_path,
            {
                "s.yaml": """
                cases:
                  - {name: typo type, principal: Usr::"alice", action: read, resource: d1,
                     expect: deny}
                  - {name: expected invalid, principal: alice, action: share, resource: d1,
                     context: {level: "high"}, expect: invalid}
                  - name: clash with a bundle entity
                    principal: alice
                    action: read
                    resource: d1
                    entities: [{uid: Doc::"d1", attrs: {owner: {__entity: {type: User, id: bob}},
                                archived: false}}]
                    expect: deny
                """
            },
        )
    )
    assert report.result is not None
    typo, invalid, clash = report.result.results
    assert typo.status == "failed" and typo.actual == "invalid"
    assert typo.errors and typo.errors[0].startswith("invalid request: ")
    assert invalid.status == "passed"
    assert clash.status == "failed" and clash.actual == "invalid"
    assert "never change them" in clash.errors[0]


ERRORING = {
    "p.cedar": """
    @id("needs-level")
    permit (principal, action, resource) when { principal.level > 3 };
    @id("always")
    permit (principal == User::"ok", action, resource);
    """,
    "tests/e.yaml": """
    cases:
      - name: errors named
        principal: User::"x"
        action: Action::"go"
        resource: Doc::"d"
        expect: deny
        erroring: [needs-level]
        errors: ["does not exist"]
      - name: no errors
        principal: {uid: User::"y", attrs: {level: 5}}
        action: Action::"go"
        resource: Doc::"d"
        expect: allow
        determining: [needs-level]
        erroring: []
        errors: []
      - name: wrong error text
        principal: User::"x"
        action: Action::"go"
        resource: Doc::"d"
        expect: deny
        errors: ["division by zero"]
      - name: wrong erroring set
        principal: User::"ok"
        action: Action::"go"
        resource: Doc::"d"
        expect: allow
        erroring: []
    """,
}


def test_expected_errors_and_erroring_policies(tmp_path: Path) -> None:
    report = run_path(write_bundle(tmp_path, ERRORING))
    assert report.result is not None
    named, none, wrong_text, wrong_set = report.result.results
    assert named.status == "passed", named.messages
    assert none.status == "passed", none.messages
    assert wrong_text.status == "failed"
    assert wrong_text.messages == (
        "errors: expected 'division by zero', got 'error while evaluating policy "
        '`needs-level`: entity `User::"x"` does not exist\'',
    )
    assert wrong_set.status == "failed"
    assert wrong_set.messages == ("erroring policies: expected [] (none), got [needs-level]",)


def test_errors_match_each_expected_text_to_a_distinct_error() -> None:
    assert errors_match([], [])
    assert errors_match(["a"], ["xAx"])
    assert errors_match(["a", "ab"], ["ab", "a"])  # needs backtracking past the first fit
    assert not errors_match(["a", "a"], ["a"])
    assert not errors_match(["a"], ["a", "b"])


def test_k_selects_by_substring_glob_or_file(tmp_path: Path) -> None:
    bundle = load_bundle(docs_bundle(tmp_path, {"pass.yaml": PASSING, "fail.yaml": FAILING}))

    def names(*patterns: str) -> list[str]:
        report = run_bundle(bundle, patterns=patterns)
        assert report.result is not None
        return [r.case.name for r in report.result.results]

    assert names("OWNER") == ["owner reads"]
    assert names("docs :: s*") == ["share", "stranger"] or names("docs :: s*") == [
        "stranger",
        "share",
    ]
    assert names("fail.yaml") == ["bola", "wrong reason", "right"]
    assert names("bola", "archived") == ["bola", "archived"] or names("bola", "archived") == [
        "archived",
        "bola",
    ]
    assert names("nothing-like-this") == []
    assert not run_bundle(bundle, patterns=["nothing-like-this"]).ok  # no case ran: not ok


def test_a_bundle_without_tests_does_not_pass(tmp_path: Path) -> None:
    report = run_path(docs_bundle(tmp_path, {}, fixtures=False))
    assert report.result is not None and report.result.results == ()
    assert not report.ok


def test_thousands_of_cases_run_in_seconds(tmp_path: Path) -> None:
    """4,000 matrix cases (40 principals x 2 actions x 50 resources), decided in batches."""
    principals = [f'User::"u{i}"' for i in range(40)]
    resources = [f'Doc::"x{i}"' for i in range(50)]
    rows = "\n".join(f"      {json.dumps(p)}: deny" for p in principals)
    suite = (
        "matrices:\n  - name: big\n"
        f"    principals: {json.dumps(principals)}\n"
        "    actions: [read, delete]\n"
        f"    resources: {json.dumps(resources)}\n"
        "    expect:\n" + rows + "\n"
    )
    report = run_path(docs_bundle(tmp_path, {"big.yaml": suite}, fixtures=False))
    assert report.result is not None
    assert report.result.passed == 4000
    assert report.result.failed == 0
    assert report.result.seconds < 10, report.result.seconds
