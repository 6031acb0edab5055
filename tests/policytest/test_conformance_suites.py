"""Every shared Cedar conformance case, turned into a `pdp test` suite, passes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pdp.policytest import run_path
from tests.support.cli import run_cli
from tests.support.conformance import load_cases
from tests.support.conformance_suites import write_suite_bundle
from tests.support.paths import CONFORMANCE
from tests.support.server import REPO

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []


def test_every_conformance_case_passes_as_a_suite(tmp_path: Path) -> None:
    """3,303 requests in 422 bundles, each with exact determining and erroring policies."""
    failures: list[str] = []
    ran = 0
    seconds = 0.0
    for case in CASES:
        root = write_suite_bundle(case, tmp_path / case.name)
        started = time.perf_counter()
        report = run_path(root)
        seconds += time.perf_counter() - started
        if report.result is None:
            failures += [f"{case.name}: {p}" for p in report.load_problems]
            continue
        ran += len(report.result.results)
        failures += [
            f"{case.name}: {r.case.name}: {'; '.join(r.messages)}"
            for r in report.result.results
            if r.status != "passed"
        ]
    assert not failures, "\n".join(failures[:30])
    assert len(CASES) == 422
    assert ran == sum(len(c.requests) for c in CASES) == 3303
    print(f"\n{ran} conformance cases as suites: load+run {seconds:.1f}s")


def test_conformance_suites_expect_what_cedar_expects(tmp_path: Path) -> None:
    """The generator is not vacuous: flipping one expectation makes the suite fail."""
    case = next(c for c in CASES if c.name == "cit_multi_2")
    root = write_suite_bundle(case, tmp_path / case.name)
    suite = root / "tests" / "conformance.yaml"
    suite.write_text(suite.read_text().replace("expect: allow", "expect: deny", 1))
    report = run_path(root)
    assert report.result is not None and report.result.failed == 1


def test_a_sample_through_the_real_cli(tmp_path: Path) -> None:
    """Templates with links, validation off, namespaces: `pdp test` exits 0 (the one with
    links as a `python -m pdp test` process)."""
    wanted = [c for c in CASES if (c.path / "links.json").is_file()][:1]
    wanted += [c for c in CASES if not c.should_validate][:1]
    wanted += [c for c in CASES if c.name.startswith("cit_")][:2]
    assert len(wanted) == 4
    roots = [write_suite_bundle(case, tmp_path / case.name) for case in wanted]
    # The first as a `pdp test` process; the same command on the others in this process.
    runs = [_pdp_test(roots[0])]
    runs += [run_cli("test", str(root), "--format", "json") for root in roots[1:]]
    for case, run in zip(wanted, runs, strict=True):
        assert run.returncode == 0, (case.name, run.stdout[-2000:], run.stderr[-2000:])
        summary = json.loads(run.stdout)["summary"]
        assert summary["passed"] == len(case.requests) and summary["failed"] == 0


def _pdp_test(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp", "test", str(root), "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
