"""Plans of every Cedar conformance request, run on the case's own entities as rows: exact.

Each request becomes a question (its principal, action, context and its resource's type);
the rows are every entity of that type in the case (and the request's resource). Cedar's
`is_authorized` on each row is the truth; the plan's predicate, its SQLite filter and its
PostgreSQL filter must select exactly the allowed rows. Plans with unsupported parts must
be refused by both consumers. The counts are printed (`pytest -s`) and asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cedarpy
import sqlalchemy as sa

from pdp.bundle import load_bundle
from pdp.errors import BundleError, RequestError
from pdp.model import EntityRef
from pdp.plan import PlanRequest, plan_resources
from tests.conftest import CONFORMANCE
from tests.support.conformance import load_cases, write_bundle
from tests.support.plan_differential import Tally, compare, expected
from tests.support.plan_tables import RowTable

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []


def _ref(value: dict[str, str]) -> EntityRef:
    return EntityRef(value["type"], value["id"])


def _has_nul(rows: list[dict[str, Any]]) -> bool:
    return "\\u0000" in json.dumps(rows)


def test_conformance_plans_are_exact(tmp_path: Path, postgres_engine: sa.Engine) -> None:
    assert len(CASES) == 422
    sqlite = sa.create_engine("sqlite://")
    tally = Tally()
    unsupported_cases: dict[str, list[str]] = {}
    supported_cases = invalid = 0
    for case in CASES:
        bundle = None
        try:
            bundle = load_bundle(write_bundle(case, tmp_path / case.name, "off"))
        except BundleError:
            continue
        rendered = json.loads(str(bundle.entities))
        case_supported = True
        for item in case.requests:
            resource_type = item["resource"]["type"]
            rows = [e for e in rendered if e["uid"]["type"] == resource_type]
            if not any(r["uid"] == item["resource"] for r in rows):
                rows.append({"uid": item["resource"], "attrs": {}, "parents": []})
            request = {"principal": item["principal"], "action": item["action"]}
            request["context"] = item["context"]
            question = PlanRequest(
                _ref(item["principal"]),
                _ref(item["action"]),
                resource_type,
                context_json=json.dumps(item["context"]),
            )
            want = expected(bundle.policy_set, bundle.entities, bundle.schema, request, rows)
            try:
                plan = plan_resources(bundle, question)
            except RequestError:
                invalid += 1
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
                unsupported_cases.setdefault(case.name, []).extend(
                    f"{p.reason}: {p.expression}" for p in plan.unsupported
                )
            table = RowTable(rows)
            engines = [sqlite] if _has_nul(rows) else [sqlite, postgres_engine]
            where = f"{case.name} {item['description']!r}"
            compare(plan, rows, want, tally, where, table, engines)
        supported_cases += case_supported
    print(
        f"\nconformance plans: {len(CASES)} cases, {supported_cases} fully supported, "
        f"{len(unsupported_cases)} with unsupported parts; {tally.plans} plans "
        f"({tally.unsupported_plans} with unsupported parts, {invalid} invalid requests); rows "
        f"compared: predicate {tally.predicate_rows}, SQLite {tally.sqlite_rows}, "
        f"PostgreSQL {tally.postgres_rows}; not expressible with the table mapping "
        f"{tally.not_in_sql}; rows refused by the predicate {tally.refused_rows}; "
        f"differences {len(tally.differences)}"
    )
    for name, parts in sorted(unsupported_cases.items()):
        print(f"  unsupported in {name}: {sorted(set(parts))[:3]}")
    assert not tally.differences, "\n".join(tally.differences[:20])
    assert tally.sqlite_rows > 0 and tally.postgres_rows > 0
