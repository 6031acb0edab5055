"""The text report: failures with expected vs actual, a summary line, a coverage table."""

from __future__ import annotations

from pdp.policytest.coverage import Coverage
from pdp.policytest.report.base import Report
from pdp.policytest.runner import FAILED, PASSED, SKIPPED, CaseResult

MARKS = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}


def render_text(report: Report, verbose: bool = False) -> str:
    lines: list[str] = []
    if report.load_problems:
        lines += [str(p) for p in report.load_problems]
        lines.append(f"error: tests of bundle {report.bundle_path} do not load")
        return "\n".join(lines) + "\n"
    result = report.result
    assert result is not None
    lines.append(
        f"pdp test: {report.bundle_name} {report.revision}: {report.suites} suite(s), "
        f"{len(result.results)} case(s)"
    )
    for item in result.results:
        if item.status == FAILED or (item.status == SKIPPED) or verbose:
            lines += _case_lines(item, verbose)
    if result.skipped:
        skipped = result.skipped
        lines.append(f"SKIPPED: {skipped} case(s) did not run; they are not counted as passed")
    for note in result.notes:
        lines.append(f"note: {note}")
    if report.coverage is not None and (report.coverage_table or not report.coverage_ok):
        lines.append("")
        lines += coverage_table(report.coverage)
    if report.coverage_message():
        lines.append(report.coverage_message())
    if report.no_cases:
        lines.append("error: no test cases ran (add tests/*.yaml to the bundle, or check -k)")
    rate = len(result.results) / result.seconds if result.seconds > 0 else 0.0
    summary = f"{result.passed} passed, {result.failed} failed"
    if result.skipped:
        summary += f", {result.skipped} skipped"
    lines.append(f"{summary} in {result.seconds:.2f}s ({rate:,.0f} cases/s)")
    return "\n".join(lines) + "\n"


def _case_lines(item: CaseResult, verbose: bool) -> list[str]:
    case = item.case
    head = f"{MARKS[item.status]} {case.where}  {case.id}"
    if item.status == SKIPPED:
        return [f"{head}  ({item.messages[0]})"]
    if item.status == PASSED:
        return [head] if not verbose else [f"{head}  -> {item.actual}"]
    lines = [head]
    lines += [f"     {message}" for message in item.messages]
    lines.append(f"     expected: {item.expected}   actual: {item.actual}")
    lines.append(f"     determining policies: {', '.join(item.determining) or '(none)'}")
    if item.erroring:
        lines.append(f"     erroring policies: {', '.join(item.erroring)}")
    lines += [f"     error: {error}" for error in item.errors]
    return lines


def coverage_table(coverage: Coverage) -> list[str]:
    """The readable coverage tables: policies, actions and (with a gateway) routes."""
    lines = [
        f"Policy coverage: {coverage.covered}/{coverage.total} policies determining in at "
        f"least one case ({coverage.percent:.1f} %)"
    ]
    rows: list[tuple[str, ...]] = [("cases", "effect", "kind", "policy", "where", "")]
    for p in coverage.policies:
        flag = "" if not p.counted else ("" if p.cases else "NEVER DETERMINING")
        if p.kind == "template":
            flag = "(template: counted through its links)"
        rows.append((str(p.cases), p.effect, p.kind, p.id, p.where, flag))
    lines += _table(rows, right=(0,))
    lines.append("")
    lines.append(f"Action coverage (actions read from the {coverage.action_source}):")
    rows = [("cases", "allow", "deny", "action", "")]
    for a in coverage.actions:
        if not a.declared:
            flag = "not a known action"
        elif not a.cases:
            flag = "NO TEST"
        elif not a.deny:
            flag = "NO DENY TEST"
        else:
            flag = ""
        rows.append((str(a.cases), str(a.allow), str(a.deny), str(a.action), flag))
    if len(rows) == 1:
        lines.append("  (no actions known: the bundle has no schema, Action entities or scopes)")
    else:
        lines += _table(rows, right=(0, 1, 2))
    if coverage.routes is not None:
        lines.append("")
        reached = sum(1 for r in coverage.routes if r.cases)
        lines.append(f"Route coverage: {reached}/{len(coverage.routes)} routes reached")
        rows = [("cases", "route", "")]
        rows += [(str(r.cases), r.route, "" if r.cases else "NOT REACHED") for r in coverage.routes]
        lines += _table(rows, right=(0,))
    for note in coverage.notes:
        lines.append(f"note: {note}")
    return lines


def _table(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out
