"""`pdp authorize BUNDLE --principal ... --action ... --resource ...`: one decision, locally."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pdp import engine
from pdp.cli import argtypes
from pdp.cli.common import EXIT_BUNDLE, EXIT_DENY, EXIT_OK, EXIT_USAGE, load_or_report
from pdp.errors import RequestError
from pdp.model import AuthzRequest


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("authorize", help="decide one request against a bundle")
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument(
        "--principal", required=True, type=argtypes.entity_uid, help='e.g. User::"alice"'
    )
    parser.add_argument(
        "--action",
        required=True,
        type=argtypes.action,
        help='e.g. readOrder (an Action, as in routes.yaml) or Action::"readOrder"',
    )
    parser.add_argument(
        "--resource", required=True, type=argtypes.entity_uid, help='e.g. Order::"o1"'
    )
    parser.add_argument("--context", default=None, help="context as a Cedar JSON object")
    parser.add_argument("--entities", default=None, help="file with request entities (JSON)")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.set_defaults(run=run)


_FLAGS = {
    "principal": "--principal",
    "action": "--action",
    "resource": "--resource",
    "context": "--context",
    "context_json": "--context",
    "entities": "--entities",
    "entities_json": "--entities",
}


def run(args: argparse.Namespace) -> int:
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
    request = AuthzRequest(
        principal=args.principal,
        action=args.action,
        resource=args.resource,
        context_json=args.context,
        entities_json=entities_json,
    )
    try:
        decision = engine.decide(bundle, request)
    except RequestError as exc:
        # Name the flag the user typed, not the API field behind it (context_json, ...).
        flag = _FLAGS.get(exc.field.split(".", 1)[0].split("[", 1)[0])
        where = f"{flag}: {exc.message}" if flag else str(exc)
        print(f"error: invalid request: {where}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(
            json.dumps(
                {
                    "decision": decision.word,
                    "determining_policies": list(decision.determining_policies),
                    "erroring_policies": list(decision.erroring_policies),
                    "errors": list(decision.errors),
                    "bundle_revision": decision.bundle_revision,
                    "decision_id": decision.decision_id,
                }
            )
        )
    else:
        print(f"decision: {decision.word}")
        print(f"determining policies: {', '.join(decision.determining_policies) or '(none)'}")
        if decision.erroring_policies:
            print(f"erroring policies: {', '.join(decision.erroring_policies)}")
        for error in decision.errors:
            print(f"error: {error}")
        print(f"bundle revision: {decision.bundle_revision}")
    return EXIT_OK if decision.allowed else EXIT_DENY
