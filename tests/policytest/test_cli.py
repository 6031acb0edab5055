"""`pdp test` on the command line: exit codes, formats, --output, -k, coverage minimum."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pdp.cli.main import main
from tests.policytest.test_coverage import HALF
from tests.policytest.test_runner import FAILING, PASSING
from tests.support.policytest_bundles import docs_bundle
from tests.support.server import REPO


def test_exit_0_when_every_case_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["test", str(docs_bundle(tmp_path, {"p.yaml": PASSING}))]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("4 passed, 0 failed in ")


def test_exit_4_when_a_case_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = docs_bundle(tmp_path, {"p.yaml": PASSING, "f.yaml": FAILING})
    assert main(["test", str(root)]) == 4
    assert "FAIL tests/f.yaml:4  Wrong :: bola" in capsys.readouterr().out
    assert main(["test", str(root), "-k", "docs ::"]) == 0  # only the passing suite
    assert main(["test", str(root), "-k", "bola"]) == 4
    assert main(["test", str(root), "-k", "no such case"]) == 4  # nothing ran: not a pass
    assert "error: no test cases ran" in capsys.readouterr().out


def test_exit_3_when_the_bundle_or_a_suite_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["test", str(tmp_path / "missing")]) == 3
    assert "bundle directory does not exist" in capsys.readouterr().err
    root = docs_bundle(tmp_path / "b", {"p.yaml": PASSING})
    (root / "broken.cedar").write_text("permit (principal, action, resource")
    assert main(["test", str(root)]) == 3
    assert "broken.cedar:1" in capsys.readouterr().err
    root = docs_bundle(tmp_path / "c", {"p.yaml": "cases:\n  - principal: [\n"})
    assert main(["test", str(root), "--format", "json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["load_errors"][0]["file"] == "tests/p.yaml"


def test_coverage_minimum(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = str(docs_bundle(tmp_path, {"h.yaml": HALF}))
    assert main(["test", root, "--coverage-min", "50"]) == 0
    out = capsys.readouterr().out
    assert "policy coverage 50.0 % (2/4) against a minimum of 50 %: ok" in out
    assert "Policy coverage:" not in out  # the tables: with --coverage, or when under
    assert main(["test", root, "--coverage-min", "50.5"]) == 4
    out = capsys.readouterr().out
    assert "against a minimum of 50.5 %: FAILED" in out
    assert "NEVER DETERMINING" in out
    assert main(["test", root, "--coverage"]) == 0
    assert "NEVER DETERMINING" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    usage_errors = (
        ["test"],
        ["test", "x", "--format", "xml"],
        ["test", "x", "--coverage-min", "101"],
    )
    for argv in usage_errors:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    capsys.readouterr()


def test_output_file_gets_the_report_and_stderr_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = docs_bundle(tmp_path / "b", {"p.yaml": PASSING, "f.yaml": FAILING})
    target = tmp_path / "report.xml"
    assert main(["test", str(root), "--format", "junit", "--output", str(target)]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "5 passed, 2 failed" in captured.err
    suites = ET.parse(target).getroot()
    assert (suites.get("tests"), suites.get("failures")) == ("7", "2")


def test_the_real_cli_in_a_subprocess(tmp_path: Path) -> None:
    root = docs_bundle(tmp_path / "b", {"p.yaml": PASSING, "f.yaml": FAILING})
    run = subprocess.run(
        [sys.executable, "-m", "pdp", "test", str(root), "--format", "json", "-k", "Docs"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["passed"] == 4
    run = subprocess.run(
        [sys.executable, "-m", "pdp", "test", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 4
    assert "2 failed" in run.stdout
