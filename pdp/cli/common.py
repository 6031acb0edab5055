"""Helpers shared by subcommands: exit codes and loading a bundle with its problems printed."""

from __future__ import annotations

import sys
from typing import TextIO

from pdp.bundle import CompiledBundle, load_bundle
from pdp.errors import BundleError, Problem

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_BUNDLE = 3
EXIT_TEST_FAILED = 4
EXIT_DENY = 5


def load_or_report(path: str, out: TextIO | None = None) -> CompiledBundle | None:
    """Load the bundle; on failure print each problem as `file[:line[:col]]: message`."""
    out = out or sys.stderr  # looked up per call, so a redirected stderr is honoured
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        report_problems(exc, out)
        print(f"error: bundle {path} does not load ({len(exc.problems)} problem(s))", file=out)
        return None
    for warning in bundle.warnings:
        print(f"{warning} [warning]", file=out)
    return bundle


def report_problems(exc: BundleError, out: TextIO | None = None) -> None:
    """Print each problem as `file[:line[:col]]: message`, then the warnings."""
    out = out or sys.stderr
    for problem in sorted(exc.problems, key=_location):
        print(f"{problem}", file=out)
    # A warning can explain an error (entity.json next to an unknown-entity error).
    for warning in exc.warnings:
        print(f"{warning} [warning]", file=out)


def _location(problem: Problem) -> tuple[str, int, int]:
    return problem.file, problem.line or 0, problem.column or 0
