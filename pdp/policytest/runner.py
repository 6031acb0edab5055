"""Runs a test plan: Cedar cases in batches through a Checker, HTTP cases through the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pdp.model import AuthzRequest, Decision, EntityRef
from pdp.policytest.checker import Checker, HttpChecker, HttpOutcome
from pdp.policytest.model import CedarCase, HttpCase, TestPlan

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case: its status, what actually happened, and why it failed."""

    case: CedarCase | HttpCase
    status: str  # PASSED, FAILED or SKIPPED
    actual: str  # allow, deny, invalid, an HTTP status, or "" when skipped
    determining: tuple[str, ...] = ()
    erroring: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()  # why it failed, or why it was skipped
    seconds: float = 0.0
    action: EntityRef | None = None  # the Cedar action decided (for HTTP: from the route)
    route: str | None = None

    @property
    def kind(self) -> str:
        return "http" if isinstance(self.case, HttpCase) else "cedar"

    @property
    def expected(self) -> str:
        case = self.case
        return case.expect_text if isinstance(case, HttpCase) else case.expect


@dataclass(frozen=True, slots=True)
class RunResult:
    """Every case result of one run, in plan order, and how long the run took."""

    results: tuple[CaseResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def passed(self) -> int:
        return self.count(PASSED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def run(
    plan: TestPlan,
    checker: Checker,
    http: HttpChecker | None = None,
    http_note: str = "gateway not available",
) -> RunResult:
    """Decide every case of `plan`; HTTP cases are skipped (never passed) without `http`.

    `http_note` says why there is no gateway, or how the gateway is run, for the report.
    """
    started = time.perf_counter()
    cedar = run_cedar_cases(plan.cedar_cases, checker)
    http_results = run_http_cases(plan.http_cases, http, http_note)
    by_case = {id(r.case): r for r in [*cedar, *http_results]}
    ordered = tuple(
        by_case[id(case)] for suite in plan.suites for case in [*suite.cases, *suite.http_cases]
    )
    notes = list(plan.notes)
    if http is None and plan.http_cases:
        notes.append(f"{len(plan.http_cases)} HTTP case(s) skipped: {http_note}")
    elif http is not None and plan.http_cases:
        notes.append(http_note)
    return RunResult(ordered, time.perf_counter() - started, tuple(notes))


def run_cedar_cases(cases: Sequence[CedarCase], checker: Checker) -> list[CaseResult]:
    """Group cases by their request entities and decide each group in one batch."""
    groups: dict[str, list[CedarCase]] = {}
    for case in cases:
        groups.setdefault(_entities_key(case.entities), []).append(case)
    results: list[CaseResult] = []
    for key, members in groups.items():
        requests = [_request(case) for case in members]
        started = time.perf_counter()
        decisions = checker.check(requests, key or None)
        each = (time.perf_counter() - started) / len(members)
        if len(decisions) != len(members):
            raise RuntimeError(f"checker answered {len(decisions)} of {len(members)} requests")
        results.extend(
            judge(case, decision, each) for case, decision in zip(members, decisions, strict=True)
        )
    return results


def _entities_key(entities: Iterable[dict[str, Any]]) -> str:
    items = sorted(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in entities)
    return f"[{','.join(items)}]" if items else ""


def _request(case: CedarCase) -> AuthzRequest:
    context_json = None if case.context is None else json.dumps(case.context, ensure_ascii=False)
    return AuthzRequest(
        principal=case.principal,
        action=case.action,
        resource=case.resource,
        context_json=context_json,
    )


def judge(case: CedarCase, decision: Decision, seconds: float = 0.0) -> CaseResult:
    """Compare one decision with what the case expects."""
    actual = "invalid" if decision.malformed else decision.word
    messages: list[str] = []
    if actual != case.expect:
        messages.append(f"expected {case.expect}, got {actual}")
    got = set(decision.determining_policies)
    if case.determining is not None and got != case.determining:
        messages.append(f"determining policies: expected {_ids(case.determining)}, got {_ids(got)}")
    erroring = set(decision.erroring_policies)
    if case.erroring is not None and erroring != case.erroring:
        messages.append(f"erroring policies: expected {_ids(case.erroring)}, got {_ids(erroring)}")
    if case.errors is not None and not errors_match(case.errors, decision.errors):
        wanted = "; ".join(repr(e) for e in case.errors) or "none"
        got_errors = "; ".join(repr(e) for e in decision.errors) or "none"
        messages.append(f"errors: expected {wanted}, got {got_errors}")
    return CaseResult(
        case=case,
        status=FAILED if messages else PASSED,
        actual=actual,
        determining=decision.determining_policies,
        erroring=decision.erroring_policies,
        errors=decision.errors,
        messages=tuple(messages),
        seconds=seconds,
        action=case.action,
    )


def errors_match(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """As many errors as expected, each expected text found in a different actual error."""
    if len(expected) != len(actual):
        return False

    def assign(index: int, used: frozenset[int]) -> bool:
        if index == len(expected):
            return True
        needle = expected[index].lower()
        return any(
            needle in text.lower() and assign(index + 1, used | {slot})
            for slot, text in enumerate(actual)
            if slot not in used
        )

    return assign(0, frozenset())


def run_http_cases(
    cases: Sequence[HttpCase], http: HttpChecker | None, unavailable: str
) -> list[CaseResult]:
    """Each HTTP case through the gateway, or skipped, saying why, when there is none."""
    if http is None:
        return [CaseResult(c, SKIPPED, "", messages=(f"skipped: {unavailable}",)) for c in cases]
    results = []
    for case in cases:
        started = time.perf_counter()
        outcome = http.check_http(case)
        results.append(judge_http(case, outcome, time.perf_counter() - started))
    return results


def judge_http(case: HttpCase, outcome: HttpOutcome, seconds: float = 0.0) -> CaseResult:
    """Compare the gateway's answer with what the HTTP case expects."""
    if outcome.problem:
        return CaseResult(
            case=case,
            status=FAILED,
            actual="not run",
            messages=(outcome.problem,),
            seconds=seconds,
        )
    messages: list[str] = []
    actual = str(outcome.status)
    if case.expect_status is not None and outcome.status != case.expect_status:
        messages.append(f"expected status {case.expect_status}, got {outcome.status}")
    if case.expect_decision is not None and (case.expect_decision == "allow") != outcome.allowed:
        got = "allow" if outcome.allowed else "deny"
        messages.append(f"expected {case.expect_decision}, got {got} ({outcome.status})")
    got_ids = set(outcome.determining_policies)
    if case.determining is not None and got_ids != case.determining:
        messages.append(
            f"determining policies: expected {_ids(case.determining)}, got {_ids(got_ids)}"
        )
    if messages and outcome.detail:
        messages.append(outcome.detail)
    return CaseResult(
        case=case,
        status=FAILED if messages else PASSED,
        actual=actual,
        determining=outcome.determining_policies,
        errors=outcome.errors,
        messages=tuple(messages),
        seconds=seconds,
        action=outcome.action,
        route=outcome.route,
    )


def _ids(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    return "[" + ", ".join(listed) + "]" if listed else "[] (none)"
