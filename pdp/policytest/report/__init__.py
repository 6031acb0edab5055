"""Renders a test run as text, JSON or JUnit XML."""

from __future__ import annotations

from pdp.policytest.report.base import Report
from pdp.policytest.report.jsonfmt import render_json
from pdp.policytest.report.junit import render_junit
from pdp.policytest.report.text import render_text

FORMATS = ("text", "json", "junit")

__all__ = ["FORMATS", "Report", "render", "render_json", "render_junit", "render_text"]


def render(report: Report, fmt: str, verbose: bool = False) -> str:
    """`report` in format `fmt` (one of FORMATS)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "junit":
        return render_junit(report)
    return render_text(report, verbose=verbose)
