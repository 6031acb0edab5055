"""Plans of every Cedar conformance request, run on the case's own entities as rows: exact.

Each request becomes a question (its principal, action, context and its resource's type);
the rows are every entity of that type in the case (and the request's resource). Cedar's
`is_authorized` on each row is the truth; the plan's predicate, its SQLite filter and its
PostgreSQL filter must select exactly the allowed rows. Plans with unsupported parts must
be refused by both consumers. The counts are printed (`pytest -s`) and asserted.
Requests over the same rows share one load of the rows' tables per engine.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy
import pytest
import sqlalchemy as sa

from pdp.bundle import CompiledBundle, load_bundle
from pdp.errors import BundleError, RequestError
from pdp.model import EntityRef
from pdp.plan import PlanRequest, plan_resources
from tests.support.conformance import Case, load_cases, write_bundle
from tests.support.paths import CONFORMANCE
from tests.support.plan_differential import Tally, compare, expected, loaded_into
from tests.support.plan_tables import RowTable

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []
PARTS = 4  # the cases in four tests, so that xdist can spread them over its workers


def _ref(value: dict[str, str]) -> EntityRef:
    return EntityRef(value["type"], value["id"])


def _has_nul(rows: list[dict[str, Any]]) -> bool:
    return "\\u0000" in json.dumps(rows)


def _rows(rendered: list[dict[str, Any]], item: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entity of the request's resource type, and the resource itself."""
    resource_type = item["resource"]["type"]
    rows = [e for e in rendered if e["uid"]["type"] == resource_type]
    if not any(r["uid"] == item["resource"] for r in rows):
        rows.append({"uid": item["resource"], "attrs": {}, "parents": []})
    return rows


@dataclass
class _Run:
    """What one part of the cases compared."""

    tally: Tally = field(default_factory=Tally)
    unsupported_cases: dict[str, list[str]] = field(default_factory=dict)
    supported_cases: int = 0
    invalid: int = 0
    requests: int = 0


def _check_case(case: Case, bundle: CompiledBundle, engines: list[sa.Engine], run: _Run) -> None:
    """Plan every request of `case` and compare each plan with Cedar on the case's rows."""
    tally = run.tally
    rendered = json.loads(str(bundle.entities))
    case_supported = True
    # Requests over the same rows share one load of their tables per engine (in a transaction
    # rolled back afterwards); each plan's filter still runs on its own, on every engine.
    by_rows: dict[str, list[dict[str, Any]]] = {}
    for item in case.requests:
        by_rows.setdefault(json.dumps(_rows(rendered, item)), []).append(item)
    for items in by_rows.values():
        rows = _rows(rendered, items[0])
        table = RowTable(rows)
        with ExitStack() as stack:
            loaded = [
                stack.enter_context(loaded_into(table, engine))
                for engine in (engines[:1] if _has_nul(rows) else engines)
            ]
            for item in items:
                run.requests += 1
                request = {"principal": item["principal"], "action": item["action"]}
                request["context"] = item["context"]
                question = PlanRequest(
                    _ref(item["principal"]),
                    _ref(item["action"]),
                    item["resource"]["type"],
                    context_json=json.dumps(item["context"]),
                )
                want = expected(bundle.policy_set, bundle.entities, bundle.schema, request, rows)
                try:
                    plan = plan_resources(bundle, question)
                except RequestError:
                    run.invalid += 1
                    result = cedarpy.is_authorized(
                        {**request, "resource": item["resource"]},
                        bundle.policy_set,
                        bundle.entities,
                        bundle.schema,
                    )
                    if result.decision is not cedarpy.Decision.NoDecision:
                        tally.differences.append(f"{case.name}: plan refused a valid request")
                    continue
                if plan.unsupported:
                    case_supported = False
                    run.unsupported_cases.setdefault(case.name, []).extend(
                        f"{p.reason}: {p.expression}" for p in plan.unsupported
                    )
                where = f"{case.name} {item['description']!r}"
                compare(plan, rows, want, tally, where, table, loaded=loaded)
    run.supported_cases += case_supported


@pytest.mark.parametrize("part", range(PARTS))
def test_conformance_plans_are_exact(part: int, tmp_path: Path, postgres_engine: sa.Engine) -> None:
    """Every PARTS-th case from `part` on: the parts together cover all 422 cases."""
    assert len(CASES) == 422
    cases = CASES[part::PARTS]
    engines = [sa.create_engine("sqlite://"), postgres_engine]
    run = _Run()
    asked = 0
    for case in cases:
        try:
            bundle = load_bundle(write_bundle(case, tmp_path / case.name, "off"))
        except BundleError:
            continue
        asked += len(case.requests)
        _check_case(case, bundle, engines, run)
    tally = run.tally
    print(
        f"\nconformance plans, part {part + 1}/{PARTS}: {len(cases)} cases, "
        f"{run.supported_cases} fully supported, {len(run.unsupported_cases)} with unsupported "
        f"parts; {tally.plans} plans ({tally.unsupported_plans} with unsupported parts, "
        f"{run.invalid} invalid requests); rows compared: predicate {tally.predicate_rows}, "
        f"SQLite {tally.sqlite_rows}, PostgreSQL {tally.postgres_rows}; not expressible with "
        f"the table mapping {tally.not_in_sql}; rows refused by the predicate "
        f"{tally.refused_rows}; differences {len(tally.differences)}"
    )
    for name, parts in sorted(run.unsupported_cases.items()):
        print(f"  unsupported in {name}: {sorted(set(parts))[:3]}")
    assert not tally.differences, "\n".join(tally.differences[:20])
    assert run.requests == asked == tally.plans + run.invalid  # every request, planned once
    assert tally.sqlite_rows > 0 and tally.postgres_rows > 0
