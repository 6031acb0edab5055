"""`pdp plan BUNDLE --principal ... --action ... --resource-type ...`: a query plan, or its SQL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pdp.cli import argtypes
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_TEST_FAILED, EXIT_USAGE, load_or_report
from pdp.errors import RequestError
from pdp.plan import Plan, PlanRequest, PlanUnsupported, plan_resources

EXIT_NOT_SQL = EXIT_TEST_FAILED  # 4: the plan cannot be said in SQL with this mapping
_SCALARS = ("Long", "String", "Boolean")
_FLAGS = {
    "principal": "--principal",
    "action": "--action",
    "resource_type": "--resource-type",
    "context": "--context",
    "context_json": "--context",
    "entities": "--entities",
    "entities_json": "--entities",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="which resources of a type a principal may act on: a query plan, or SQL",
        description="Make a query plan (README, 'Query plans'); with --sql, its WHERE condition.",
    )
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument(
        "--principal", required=True, type=argtypes.entity_uid, help='e.g. User::"42"'
    )
    parser.add_argument(
        "--action", required=True, type=argtypes.action, help='readOrder or Action::"readOrder"'
    )
    parser.add_argument("--resource-type", required=True, help="e.g. Order")
    parser.add_argument("--context", default=None, help="context as a Cedar JSON object")
    parser.add_argument("--entities", default=None, help="file with request entities (JSON)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sql = parser.add_argument_group("SQL (needs the pdp[sql] extra)")
    sql.add_argument("--sql", choices=("sqlite", "postgresql"), help="print the WHERE condition")
    sql.add_argument("--table", help="the resources' table")
    sql.add_argument("--id-column", default="id", help="its id column (default: id)")
    sql.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="ATTR=COLUMN:TYPE",
        help="an attribute's column; TYPE is Long, String, Boolean or an entity type "
        "(the column then holds the entity id), e.g. owner=owner_id:User",
    )
    sql.add_argument(
        "--parent",
        action="append",
        default=[],
        metavar="TYPE=COLUMN",
        help="the column holding the resource's parent of this type, e.g. Tenant=tenant_id",
    )
    sql.add_argument(
        "--parent-table",
        action="append",
        default=[],
        metavar="TYPE=TABLE:KEY:PARENT",
        help="parents of this type in a join table, e.g. Group=order_groups:order_id:group_id",
    )
    sql.add_argument(
        "--set-table",
        action="append",
        default=[],
        metavar="ATTR=TABLE:KEY:VALUE:TYPE[:PRESENT]",
        help="a set attribute in a join table; PRESENT: a boolean column of --table saying "
        "whether the attribute is there (default: always), "
        "e.g. tags=order_tags:order_id:tag:String",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.sql and not args.table:
        print("error: --sql needs --table", file=sys.stderr)
        return EXIT_USAGE
    bundle = load_or_report(args.bundle)
    if bundle is None:
        return EXIT_BUNDLE
    entities_json = None
    if args.entities:
        try:
            entities_json = Path(args.entities).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            print(f"error: --entities: cannot read {args.entities}: {reason}", file=sys.stderr)
            return EXIT_USAGE
    question = PlanRequest(
        principal=args.principal,
        action=args.action,
        resource_type=args.resource_type,
        context_json=args.context,
        entities_json=entities_json,
    )
    try:
        plan = plan_resources(bundle, question)
    except RequestError as exc:
        flag = _FLAGS.get(exc.field.split(".", 1)[0].split("[", 1)[0])
        where = f"{flag}: {exc.message}" if flag else str(exc)
        print(f"error: invalid request: {where}", file=sys.stderr)
        return EXIT_USAGE
    if args.sql:
        return _print_sql(plan, args)
    if args.json:
        print(json.dumps(plan.to_json(), ensure_ascii=False))
    else:
        _print_plan(plan)
    return EXIT_OK


def _print_plan(plan: Plan) -> None:
    print(f"kind: {plan.kind.value}")
    print(f"condition: {json.dumps(plan.condition, ensure_ascii=False)}")
    print(f"policies: {', '.join(plan.policies) or '(none)'}")
    for part in plan.unsupported:
        print(f"unsupported: {part.policy}: {part.expression} ({part.reason})")
    print(f"bundle revision: {plan.bundle_revision}")


def _print_sql(plan: Plan, args: argparse.Namespace) -> int:
    try:
        from pdp.cli import plansql
    except ImportError as exc:  # sqlalchemy is the optional `sql` extra
        print(f"error: --sql needs SQLAlchemy: pip install 'pdp[sql]' ({exc})", file=sys.stderr)
        return EXIT_USAGE
    try:
        mapping = plansql.mapping_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        where, params = plansql.render(plan, mapping, args.sql, literal=not args.json)
    except PlanUnsupported as exc:
        print(f"error: the plan cannot be written as SQL with this mapping: {exc}", file=sys.stderr)
        return EXIT_NOT_SQL
    if args.json:
        output: dict[str, Any] = {"kind": plan.kind.value, "sql": where, "params": params}
        print(json.dumps(output, ensure_ascii=False))
    else:
        print(where)
    return EXIT_OK
