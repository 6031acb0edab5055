"""The JUnit XML report: one testsuite per suite file, as CI systems read it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pdp.policytest.report.base import Report
from pdp.policytest.runner import FAILED, SKIPPED, CaseResult

TOOL = "pdp test"


def render_junit(report: Report) -> str:
    """A `<testsuites>` document; load errors and a failed coverage minimum are test cases too."""
    root = ET.Element("testsuites", name=TOOL)
    if report.load_problems:
        _load_error_suite(root, report)
    elif report.result is not None:
        by_file: dict[str, list[CaseResult]] = {}
        for result in report.result.results:
            by_file.setdefault(result.case.where.file, []).append(result)
        for file, results in by_file.items():
            _suite(root, report, file, results)
        if report.coverage_min is not None and report.coverage is not None:
            _coverage_suite(root, report)
    _totals(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _suite(root: ET.Element, report: Report, file: str, results: list[CaseResult]) -> None:
    suite = ET.SubElement(
        root,
        "testsuite",
        name=results[0].case.suite,
        file=report.bundle_file(file),
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="bundle", value=report.bundle_name)
    ET.SubElement(properties, "property", name="revision", value=report.revision)
    for result in results:
        case = result.case
        element = ET.SubElement(
            suite,
            "testcase",
            classname=case.suite,
            name=case.name,
            file=report.bundle_file(case.where.file),
            time=f"{result.seconds:.6f}",
        )
        if case.where.line is not None:
            element.set("line", str(case.where.line))
        if result.status == FAILED:
            failure = ET.SubElement(
                element, "failure", message=result.messages[0], type="PolicyTestFailure"
            )
            failure.text = _details(report, result)
        elif result.status == SKIPPED:
            ET.SubElement(element, "skipped", message=result.messages[0].removeprefix("skipped: "))


def _details(report: Report, result: CaseResult) -> str:
    lines = [f"{report.bundle_file(result.case.where.file)}:{result.case.where.line or ''}"]
    lines += list(result.messages)
    lines.append(f"expected: {result.expected}  actual: {result.actual}")
    lines.append(f"determining policies: {', '.join(result.determining) or '(none)'}")
    lines += [f"error: {e}" for e in result.errors]
    return "\n".join(lines)


def _coverage_suite(root: ET.Element, report: Report) -> None:
    suite = ET.SubElement(root, "testsuite", name="pdp coverage")
    case = ET.SubElement(
        suite,
        "testcase",
        classname="pdp coverage",
        name=f"policy coverage >= {report.coverage_min:g} %",
        time="0",
    )
    if not report.coverage_ok and report.coverage is not None:
        failure = ET.SubElement(
            case, "failure", message=report.coverage_message(), type="CoverageBelowMinimum"
        )
        failure.text = "never determining: " + ", ".join(p.id for p in report.coverage.uncovered)


def _load_error_suite(root: ET.Element, report: Report) -> None:
    suite = ET.SubElement(root, "testsuite", name="pdp bundle")
    case = ET.SubElement(
        suite, "testcase", classname="pdp bundle", name=f"bundle {report.bundle_path} loads"
    )
    first = report.load_problems[0]
    error = ET.SubElement(case, "error", message=str(first), type="BundleDoesNotLoad")
    error.text = "\n".join(str(p) for p in report.load_problems)


def _totals(root: ET.Element) -> None:
    """Set tests/failures/errors/skipped/time on every testsuite and on the root."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        time = sum(float(c.get("time", "0")) for c in cases)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{time:.6f}")
        seconds += time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.6f}")
