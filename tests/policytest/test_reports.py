"""The three report formats: readable text, JSON for tools, JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from pdp.policytest import render, run_path
from tests.policytest.test_coverage import HALF
from tests.policytest.test_runner import FAILING
from tests.support.policytest_bundles import docs_bundle

HTTP = """
name: Gateway
http:
  - {name: anonymous, method: GET, path: /docs/d1, expect: 401}
"""


def _report(tmp_path: Path, coverage_min: float | None = None):
    root = docs_bundle(tmp_path, {"half.yaml": HALF, "fail.yaml": FAILING, "http.yaml": HTTP})
    return run_path(root, coverage=True, coverage_min=coverage_min)


def test_text_lists_failures_with_expected_actual_and_determining(tmp_path: Path) -> None:
    text = render(_report(tmp_path), "text")
    lines = text.splitlines()
    assert lines[0].startswith("pdp test: test_text_lists_failures_with_0 sha256:")
    assert "3 suite(s), 8 case(s)" in lines[0]
    assert "FAIL tests/fail.yaml:4  Wrong :: bola" in lines
    assert "     expected allow, got deny" in lines
    assert "     expected: allow   actual: deny" in lines
    assert "FAIL tests/fail.yaml:5  Wrong :: wrong reason" in lines
    assert "     determining policies: admin-all" in lines
    assert not any(line.startswith("PASS") for line in lines)  # only with -v
    skip = [line for line in lines if line.startswith("SKIP ")]
    assert skip == [
        "SKIP tests/http.yaml:4  Gateway :: anonymous  (skipped: gateway not available "
        "(the bundle has no routes.yaml))"
    ]
    assert "SKIPPED: 1 case(s) did not run; they are not counted as passed" in lines
    assert "Policy coverage: 2/4 policies determining in at least one case (50.0 %)" in lines
    assert any("share-high-level" in line and "NEVER DETERMINING" in line for line in lines)
    assert any('Action::"delete"' in line and "NO DENY TEST" in line for line in lines)
    assert any('Action::"share"' in line and "NO TEST" in line for line in lines)
    assert lines[-1].startswith("5 passed, 2 failed, 1 skipped in ")
    assert "PASS tests/half.yaml:3  tests/half.yaml :: alice read d1  -> allow" in render(
        _report(tmp_path), "text", verbose=True
    )


def test_json_report(tmp_path: Path) -> None:
    document = json.loads(render(_report(tmp_path, coverage_min=80), "json"))
    assert document["ok"] is False
    assert document["summary"] == {
        "suites": 3,
        "cases": 8,
        "passed": 5,
        "failed": 2,
        "skipped": 1,
        "seconds": document["summary"]["seconds"],
    }
    bola = next(c for c in document["cases"] if c["name"] == "bola")
    assert bola == {
        "suite": "Wrong",
        "name": "bola",
        "file": "tests/fail.yaml",
        "line": 4,
        "kind": "cedar",
        "status": "failed",
        "expected": "allow",
        "actual": "deny",
        "determining_policies": [],
        "erroring_policies": [],
        "errors": [],
        "messages": ["expected allow, got deny"],
        "request": {
            "principal": 'User::"bob"',
            "action": 'Action::"read"',
            "resource": 'Doc::"d1"',
        },
    }
    skipped = next(c for c in document["cases"] if c["kind"] == "http")
    assert skipped["status"] == "skipped" and skipped["actual"] == ""
    coverage = document["coverage"]
    assert coverage["policies"]["percent"] == 50.0
    never = ["no-archived-delete", "share-high-level"]
    assert coverage["policies"]["never_determining"] == never
    assert coverage["actions"]["untested"] == ['Action::"share"']
    assert coverage["actions"]["without_deny"] == ['Action::"delete"']
    assert (coverage["minimum"], coverage["ok"]) == (80, False)
    assert coverage["routes"] is None


def test_junit_is_the_structure_ci_systems_read(tmp_path: Path) -> None:
    report = _report(tmp_path, coverage_min=80)
    root = ET.fromstring(render(report, "junit"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("9", "3", "1")
    assert root.get("errors") == "0"
    suites = root.findall("testsuite")
    names = ["Wrong", "tests/half.yaml", "Gateway", "pdp coverage"]
    assert [s.get("name") for s in suites] == names
    for suite in suites:
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        assert float(suite.get("time", "x")) >= 0
        for case in cases:
            assert case.get("classname") and case.get("name")
            float(case.get("time", "x"))
    wrong = suites[0]
    assert wrong.get("file", "").endswith("/tests/fail.yaml")
    assert (wrong.get("failures"), wrong.get("skipped")) == ("2", "0")
    bola = wrong.find("testcase[@name='bola']")
    assert bola is not None and bola.get("line") == "4"
    failure = bola.find("failure")
    assert failure is not None and failure.get("message") == "expected allow, got deny"
    assert "determining policies: (none)" in (failure.text or "")
    skipped = suites[2].find("testcase/skipped")
    assert skipped is not None and "gateway not available" in skipped.get("message", "")
    coverage_case = suites[3].find("testcase")
    assert coverage_case is not None and coverage_case.get("name") == "policy coverage >= 80 %"
    coverage_failure = coverage_case.find("failure")
    assert coverage_failure is not None
    assert "50.0 % (2/4)" in coverage_failure.get("message", "")
    assert coverage_failure.text == "never determining: no-archived-delete, share-high-level"


def test_load_errors_in_every_format(tmp_path: Path) -> None:
    report = run_path(docs_bundle(tmp_path, {"bad.yaml": "cases: [\n"}))
    assert report.load_problems
    text = render(report, "text")
    assert text.splitlines()[0].startswith("tests/bad.yaml:2:1: invalid YAML")
    document = json.loads(render(report, "json"))
    assert document["ok"] is False
    assert document["load_errors"][0]["file"] == "tests/bad.yaml"
    assert document["load_errors"][0]["line"] == 2
    root = ET.fromstring(render(report, "junit"))
    assert (root.get("tests"), root.get("errors"), root.get("failures")) == ("1", "1", "0")
    error = root.find("testsuite/testcase/error")
    assert error is not None and error.get("message", "").startswith("tests/bad.yaml:2:1:")
