"""The JSON report: summary, every case, notes and coverage, for tools to read."""

from __future__ import annotations

import json
from typing import Any

from pdp.policytest.model import HttpCase
from pdp.policytest.report.base import Report
from pdp.policytest.runner import CaseResult


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON document as plain data."""
    document: dict[str, Any] = {
        "bundle": {
            "path": report.bundle_path,
            "name": report.bundle_name,
            "revision": report.revision,
        },
        "ok": report.ok,
    }
    if report.load_problems:
        document["load_errors"] = [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in report.load_problems
        ]
        return document
    result = report.result
    assert result is not None
    document["summary"] = {
        "suites": report.suites,
        "cases": len(result.results),
        "passed": result.passed,
        "failed": result.failed,
        "skipped": result.skipped,
        "seconds": round(result.seconds, 4),
    }
    document["notes"] = list(result.notes)
    document["cases"] = [_case(r) for r in result.results]
    if report.coverage is not None:
        coverage = report.coverage.to_json()
        coverage["minimum"] = report.coverage_min
        coverage["ok"] = report.coverage_ok
        document["coverage"] = coverage
    return document


def _case(result: CaseResult) -> dict[str, Any]:
    case = result.case
    item: dict[str, Any] = {
        "suite": case.suite,
        "name": case.name,
        "file": case.where.file,
        "line": case.where.line,
        "kind": result.kind,
        "status": result.status,
        "expected": result.expected,
        "actual": result.actual,
        "determining_policies": list(result.determining),
        "erroring_policies": list(result.erroring),
        "errors": list(result.errors),
        "messages": list(result.messages),
    }
    if isinstance(case, HttpCase):
        item["request"] = {"method": case.method, "path": case.path}
        item["route"] = result.route
    else:
        item["request"] = {
            "principal": str(case.principal),
            "action": str(case.action),
            "resource": str(case.resource),
        }
    return item
