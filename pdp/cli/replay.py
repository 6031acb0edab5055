"""`pdp replay LOG... --bundle CANDIDATE`: what a policy change would change, from real traffic."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack

from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_RUNTIME, EXIT_TEST_FAILED, load_or_report
from pdp.decisionlog.replay import Report, replay


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="re-decide logged decisions against a candidate bundle",
        description="Replays every logged decision whose inputs the log holds in full "
        "(pdp serve --decision-log-requests full) against CANDIDATE, and reports the decisions "
        "that change, grouped by route or action and policies. Exit 0 nothing changes, 4 "
        "something does, 3 the bundle does not load, 1 a log cannot be read.",
    )
    parser.add_argument("logs", nargs="+", metavar="DECISION_LOG", help="decision log files")
    parser.add_argument("--bundle", required=True, metavar="CANDIDATE", help="bundle directory")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    bundle = load_or_report(args.bundle)
    if bundle is None:
        return EXIT_BUNDLE
    with ExitStack() as stack:
        try:
            logs = [
                (path, stack.enter_context(open(path, encoding="utf-8", errors="replace")))
                for path in args.logs
            ]
        except OSError as exc:
            print(f"error: {exc.filename}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_RUNTIME
        report = replay(bundle, logs)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        _print_text(report)
    return EXIT_TEST_FAILED if report.changed else EXIT_OK


def _print_text(report: Report) -> None:
    print(
        f"replayed {report.replayed} of {report.decisions} decisions against "
        f"{report.bundle_name} {report.bundle_revision}: {report.changed} change, "
        f"{report.unchanged} unchanged"
        + (f" ({report.reasons_changed} by other policies)" if report.reasons_changed else "")
    )
    skipped = sum(report.not_replayable.values())
    if skipped:
        reasons = ", ".join(f"{why}: {n}" for why, n in sorted(report.not_replayable.items()))
        print(f"not replayable: {skipped} ({reasons})")
    if report.unreadable:
        print(f"unreadable lines: {report.unreadable}")
    for group in report.sorted_groups():
        print()
        print(f"{group.live} -> {group.candidate}  {group.count}  {group.where}")
        print(f"    live policies:      {', '.join(group.live_policies) or '(none)'}")
        print(f"    candidate policies: {', '.join(group.candidate_policies) or '(none)'}")
        for change in group.examples:
            print(
                f"    e.g. {change.principal} on {change.resource}  "
                f"(decision {change.decision_id}, {change.location})"
            )
