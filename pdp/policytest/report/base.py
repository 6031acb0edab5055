"""What every reporter renders: the bundle, the run, and coverage when it was asked for."""

from __future__ import annotations

from dataclasses import dataclass

from pdp.errors import Problem
from pdp.policytest.coverage import Coverage
from pdp.policytest.runner import RunResult


@dataclass(frozen=True, slots=True)
class Report:
    """One `pdp test` run; `load_problems` is set (and `result` None) when nothing could run."""

    bundle_path: str
    bundle_name: str = ""
    revision: str = ""
    suites: int = 0
    result: RunResult | None = None
    coverage: Coverage | None = None
    coverage_min: float | None = None
    coverage_table: bool = False  # --coverage: the text report shows the tables
    load_problems: tuple[Problem, ...] = ()

    @property
    def coverage_ok(self) -> bool:
        if self.coverage_min is None or self.coverage is None:
            return True
        return self.coverage.percent + 1e-9 >= self.coverage_min

    @property
    def no_cases(self) -> bool:
        return self.result is not None and not self.result.results

    @property
    def ok(self) -> bool:
        return (
            not self.load_problems
            and self.result is not None
            and self.result.ok
            and not self.no_cases
            and self.coverage_ok
        )

    def coverage_message(self) -> str:
        """One line on the coverage minimum, or "" when none was set."""
        if self.coverage_min is None or self.coverage is None:
            return ""
        c = self.coverage
        verdict = "ok" if self.coverage_ok else "FAILED"
        return (
            f"policy coverage {c.percent:.1f} % ({c.covered}/{c.total}) against a minimum of "
            f"{self.coverage_min:g} %: {verdict}"
        )

    def bundle_file(self, relative: str) -> str:
        """`relative` (a bundle path) as a path from where pdp was run, for CI annotations."""
        base = self.bundle_path.rstrip("/")
        return f"{base}/{relative}" if base and base != "." else relative
