"""Coverage of a run: policies ever determining, actions tested (and denied), routes reached."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from pdp.bundle.compiler import CompiledBundle
from pdp.model import EntityRef
from pdp.policytest.catalog import ActionCatalog
from pdp.policytest.model import HttpCase
from pdp.policytest.runner import SKIPPED, RunResult

COUNTED_KINDS = ("static", "link")  # a template is never determining; its links are


@dataclass(frozen=True, slots=True)
class PolicyCoverage:
    """One policy and the number of cases it was determining in."""

    id: str
    kind: str
    effect: str
    where: str
    cases: int

    @property
    def counted(self) -> bool:
        return self.kind in COUNTED_KINDS


@dataclass(frozen=True, slots=True)
class ActionCoverage:
    """One action and how many cases tested it, expecting allow and expecting deny."""

    action: EntityRef
    cases: int
    allow: int
    deny: int
    declared: bool = True  # False: tested, but not among the bundle's known actions


@dataclass(frozen=True, slots=True)
class RouteCoverage:
    """One route of routes.yaml and how many HTTP cases reached it."""

    route: str
    cases: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """Everything `--coverage` reports."""

    policies: tuple[PolicyCoverage, ...]
    actions: tuple[ActionCoverage, ...]
    action_source: str
    routes: tuple[RouteCoverage, ...] | None  # None: no gateway to reach routes through
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(1 for p in self.policies if p.counted)

    @property
    def covered(self) -> int:
        return sum(1 for p in self.policies if p.counted and p.cases)

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.covered / self.total

    @property
    def uncovered(self) -> list[PolicyCoverage]:
        return [p for p in self.policies if p.counted and not p.cases]

    @property
    def untested_actions(self) -> list[EntityRef]:
        return [a.action for a in self.actions if a.declared and not a.cases]

    @property
    def actions_without_deny(self) -> list[EntityRef]:
        return [a.action for a in self.actions if a.declared and a.cases and not a.deny]

    @property
    def unreached_routes(self) -> list[str]:
        return [r.route for r in self.routes or () if not r.cases]

    def to_json(self) -> dict[str, Any]:
        return {
            "policies": {
                "covered": self.covered,
                "total": self.total,
                "percent": round(self.percent, 2),
                "items": [
                    {
                        "id": p.id,
                        "kind": p.kind,
                        "effect": p.effect,
                        "where": p.where,
                        "determining_cases": p.cases,
                    }
                    for p in self.policies
                ],
                "never_determining": [p.id for p in self.uncovered],
            },
            "actions": {
                "source": self.action_source,
                "items": [
                    {
                        "action": str(a.action),
                        "cases": a.cases,
                        "allow": a.allow,
                        "deny": a.deny,
                        "declared": a.declared,
                    }
                    for a in self.actions
                ],
                "untested": [str(a) for a in self.untested_actions],
                "without_deny": [str(a) for a in self.actions_without_deny],
            },
            "routes": None
            if self.routes is None
            else {
                "items": [{"route": r.route, "cases": r.cases} for r in self.routes],
                "unreached": self.unreached_routes,
            },
            "notes": list(self.notes),
        }


def compute(
    bundle: CompiledBundle,
    result: RunResult,
    catalog: ActionCatalog,
    routes: tuple[str, ...] | None = None,
) -> Coverage:
    """Coverage of `result` over `bundle`; `routes` are the gateway's routes when it runs."""
    ran = [r for r in result.results if r.status != SKIPPED]
    determining = Counter(pid for r in ran for pid in set(r.determining))
    policies = tuple(
        PolicyCoverage(
            id=p.id,
            kind=p.kind,
            effect=p.effect,
            where=p.file + (f":{p.line}" if p.line else ""),
            cases=(
                determining[p.id]
                if p.kind in COUNTED_KINDS
                else _link_cases(bundle, p.id, determining)
            ),
        )
        for p in bundle.policies
    )
    cases: Counter[EntityRef] = Counter()
    allows: Counter[EntityRef] = Counter()
    denies: Counter[EntityRef] = Counter()
    for r in ran:
        if r.action is None:
            continue
        cases[r.action] += 1
        if isinstance(r.case, HttpCase):  # what the gateway did: 200 is an allow
            outcome = "allow" if r.actual == "200" else "deny"
        else:  # what the case asserts
            outcome = r.expected
        if outcome == "allow":
            allows[r.action] += 1
        elif outcome == "deny":
            denies[r.action] += 1
    known = list(catalog.actions)
    extra = [a for a in cases if a not in set(known)]
    actions = tuple(
        ActionCoverage(a, cases[a], allows[a], denies[a], declared=a in set(known))
        for a in [*known, *sorted(extra, key=str)]
    )
    route_items = None
    if routes is not None:
        reached = Counter(r.route for r in ran if r.route)
        route_items = tuple(RouteCoverage(route, reached[route]) for route in routes)
    notes = []
    if catalog.note:
        notes.append(catalog.note)
    if routes is None and any(isinstance(r.case, HttpCase) for r in result.results):
        notes.append("route coverage needs the gateway; HTTP cases were skipped")
    return Coverage(policies, actions, catalog.source, route_items, tuple(notes))


def _link_cases(bundle: CompiledBundle, template_id: str, determining: Counter[str]) -> int:
    """A template's count: the cases any of its links was determining in."""
    return sum(determining[p.id] for p in bundle.policies if p.template_id == template_id)
