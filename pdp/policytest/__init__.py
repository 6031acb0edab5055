"""Policy unit tests: YAML suites in a bundle's tests/, run as the server decides, with coverage."""

from __future__ import annotations

from pdp.policytest.checker import Checker, EngineChecker, HttpChecker, HttpOutcome
from pdp.policytest.coverage import Coverage, compute
from pdp.policytest.discover import load_plan
from pdp.policytest.model import CedarCase, HttpCase, Identity, Location, Suite, TestPlan
from pdp.policytest.report import FORMATS, Report, render
from pdp.policytest.runner import CaseResult, RunResult, run
from pdp.policytest.session import run_bundle, run_path

__all__ = [
    "FORMATS",
    "CaseResult",
    "CedarCase",
    "Checker",
    "Coverage",
    "EngineChecker",
    "HttpCase",
    "HttpChecker",
    "HttpOutcome",
    "Identity",
    "Location",
    "Report",
    "RunResult",
    "Suite",
    "TestPlan",
    "compute",
    "load_plan",
    "render",
    "run",
    "run_bundle",
    "run_path",
]
