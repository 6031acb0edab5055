"""The example bundle's own suite: the orders API, BOLA and BFLA, at 100 % policy coverage."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from pdp.policytest import run_path
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import REPO


def test_the_example_suite_passes_at_full_policy_coverage() -> None:
    report = run_path(EXAMPLE_BUNDLE, coverage=True, coverage_min=100)
    assert report.load_problems == ()
    assert report.result is not None and report.coverage is not None
    failed = [f"{r.case.id}: {r.messages}" for r in report.result.results if r.status == "failed"]
    assert failed == []
    cedar = [r for r in report.result.results if r.kind == "cedar"]
    assert len(cedar) >= 100 and all(r.status == "passed" for r in cedar)
    assert report.coverage.percent == 100.0 and report.coverage.total >= 11
    assert report.coverage.untested_actions == []
    assert report.coverage.actions_without_deny == []
    names = " ".join(r.case.id for r in report.result.results)
    assert "BOLA" in names and "BFLA" in names
    http = [r for r in report.result.results if r.kind == "http"]
    assert len(http) >= 15
    statuses = {r.status for r in http}
    if report.coverage.routes is not None:  # the gateway and routes.yaml are there
        assert statuses == {"passed"}
        assert report.coverage.unreached_routes == []
    else:
        assert statuses == {"skipped"}
    assert report.ok


def test_the_example_suite_through_the_cli_as_ci_runs_it(tmp_path: Path) -> None:
    target = tmp_path / "policy-tests.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pdp",
            "test",
            "policies",
            "--coverage-min",
            "100",
            "--format",
            "junit",
            "--output",
            str(target),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "policy coverage 100.0 %" in run.stderr
    root = ET.parse(target).getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert int(root.get("tests", "0")) >= 100
