"""One `pdp test` run over a bundle directory: load, plan, run, cover, report."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pdp.bundle import CompiledBundle, load_bundle
from pdp.errors import BundleError
from pdp.policytest.catalog import action_catalog
from pdp.policytest.checker import Checker, EngineChecker, HttpChecker
from pdp.policytest.coverage import compute
from pdp.policytest.discover import load_plan
from pdp.policytest.http_gateway import UNAVAILABLE, gateway_checker
from pdp.policytest.report import Report
from pdp.policytest.runner import run


def run_path(
    path: str | os.PathLike[str],
    patterns: Sequence[str] = (),
    coverage: bool = False,
    coverage_min: float | None = None,
) -> Report:
    """Load the bundle at `path` as the server would and run its tests; never raises BundleError.

    A bundle or suite that does not load comes back as a Report with `load_problems`.
    """
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        return Report(bundle_path=str(path), load_problems=tuple(exc.problems))
    return run_bundle(bundle, str(path), patterns, coverage, coverage_min)


def run_bundle(
    bundle: CompiledBundle,
    bundle_path: str = "",
    patterns: Sequence[str] = (),
    coverage: bool = False,
    coverage_min: float | None = None,
    checker: Checker | None = None,
    http: HttpChecker | None = None,
) -> Report:
    """Run the tests of an already compiled bundle; `checker` defaults to the engine."""
    catalog = action_catalog(bundle)
    try:
        plan = load_plan(bundle, catalog).select(list(patterns))
    except BundleError as exc:
        return Report(
            bundle_path=bundle_path or bundle.root,
            bundle_name=bundle.name,
            revision=bundle.revision,
            load_problems=tuple(exc.problems),
        )
    reason = UNAVAILABLE
    if http is None and plan.http_cases:
        http, reason = gateway_checker(bundle)
    result = run(plan, checker or EngineChecker(bundle), http, reason)
    report_coverage = None
    if coverage or coverage_min is not None:
        routes = tuple(http.routes) if http is not None else None
        report_coverage = compute(bundle, result, catalog, routes)
    return Report(
        bundle_path=bundle_path or bundle.root,
        bundle_name=bundle.name,
        revision=bundle.revision,
        suites=len(plan.suites),
        result=result,
        coverage=report_coverage,
        coverage_min=coverage_min,
        coverage_table=coverage,
    )
