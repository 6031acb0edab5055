"""Query plans: which resources of a type a principal may act on, as a condition a database runs."""

from __future__ import annotations

from pdp.errors import PlanUnsupported  # what to_filter and to_predicate raise
from pdp.plan.planner import plan_resources
from pdp.plantypes import Plan, PlanKind, PlanRequest, UnsupportedPart

__all__ = [
    "Plan",
    "PlanKind",
    "PlanRequest",
    "PlanUnsupported",
    "UnsupportedPart",
    "plan_resources",
]
