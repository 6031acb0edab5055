"""Plain types of a test plan: suites, Cedar cases, HTTP cases and where each was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pdp.model import EntityRef

DECISIONS = ("allow", "deny", "invalid")  # what a Cedar-level case may expect
HTTP_DECISIONS = ("allow", "deny")  # an HTTP case may expect these, or a status code


@dataclass(frozen=True, slots=True)
class Location:
    """A file relative to the bundle root and the 1-based line where something starts."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class CedarCase:
    """One Cedar-level case: a request, the decision expected, and optional exact details."""

    suite: str
    name: str
    where: Location
    principal: EntityRef
    action: EntityRef
    resource: EntityRef
    context: dict[str, Any] | None
    entities: tuple[dict[str, Any], ...]  # request entities, Cedar JSON, one per uid
    expect: str  # one of DECISIONS
    determining: frozenset[str] | None = None  # exact set of determining policy ids
    erroring: frozenset[str] | None = None  # exact set of erroring policy ids
    errors: tuple[str, ...] | None = None  # each must be found in a distinct error message
    matrix: str | None = None  # the matrix this case was expanded from, if any

    @property
    def id(self) -> str:
        return f"{self.suite} :: {self.name}"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an HTTP case calls as: JWT claims, a SPIFFE id (mTLS peer), both, or neither."""

    claims: dict[str, Any] | None = None
    spiffe: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.claims is None and self.spiffe is None


@dataclass(frozen=True, slots=True)
class HttpCase:
    """One HTTP-level case, decided through the gateway pipeline (routes, identity, policy)."""

    suite: str
    name: str
    where: Location
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    identity: Identity
    expect_decision: str | None  # "allow" or "deny", or None when a status is expected
    expect_status: int | None  # e.g. 200, 401, 403
    determining: frozenset[str] | None = None
    source_ip: str = ""  # the downstream address, for policies that read context.source_ip

    @property
    def id(self) -> str:
        return f"{self.suite} :: {self.name}"

    @property
    def expect_text(self) -> str:
        if self.expect_status is not None:
            return str(self.expect_status)
        return str(self.expect_decision)


@dataclass(frozen=True, slots=True)
class Suite:
    """One suite file: its Cedar cases (matrices expanded) and its HTTP cases, in file order."""

    name: str
    file: str
    description: str = ""
    cases: tuple[CedarCase, ...] = ()
    http_cases: tuple[HttpCase, ...] = ()


@dataclass(frozen=True, slots=True)
class TestPlan:
    """Every suite of a bundle, and the fixture files they could draw on."""

    suites: tuple[Suite, ...]
    fixture_files: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def cedar_cases(self) -> list[CedarCase]:
        return [case for suite in self.suites for case in suite.cases]

    @property
    def http_cases(self) -> list[HttpCase]:
        return [case for suite in self.suites for case in suite.http_cases]

    def select(self, patterns: list[str]) -> TestPlan:
        """Only the cases whose id or file matches one of `patterns` (see `matches`)."""
        if not patterns:
            return self
        suites = []
        for suite in self.suites:
            cases = tuple(c for c in suite.cases if matches(c.id, suite.file, patterns))
            http = tuple(c for c in suite.http_cases if matches(c.id, suite.file, patterns))
            if cases or http:
                suites.append(Suite(suite.name, suite.file, suite.description, cases, http))
        return TestPlan(tuple(suites), self.fixture_files, self.notes)


def matches(case_id: str, file: str, patterns: list[str]) -> bool:
    """Case-insensitive: a substring of `suite :: case` or the file, or a glob if it has *?[."""
    from fnmatch import fnmatchcase

    for pattern in patterns:
        wanted = pattern.lower()
        for text in (case_id.lower(), file.lower()):
            if any(ch in wanted for ch in "*?[") and fnmatchcase(text, wanted):
                return True
            if wanted in text:
                return True
    return False
