"""`pdp test BUNDLE`: run the bundle's policy unit tests (tests/**/*.yaml), with coverage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdp.cli import argtypes
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_TEST_FAILED, EXIT_USAGE
from pdp.policytest import FORMATS, render, run_path


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run the bundle's policy unit tests",
        description="Run the YAML test suites under BUNDLE/tests/ against the bundle, deciding "
        "exactly as `pdp serve` would. Exit 0 when every case passes, 4 when one fails or "
        "policy coverage is under --coverage-min, 3 when the bundle or a suite does not load.",
    )
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only cases whose 'suite :: case' name or file contains PATTERN (case-insensitive; "
        "a glob when it has * ? [); repeat to select more",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument(
        "--coverage", action="store_true", help="report policy, action and route coverage"
    )
    parser.add_argument(
        "--coverage-min",
        type=argtypes.number(0, 100, "a percentage"),
        metavar="N",
        help="fail (exit 4) when under N percent of policies were determining in some case",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = run_path(args.bundle, args.patterns, args.coverage, args.coverage_min)
    text = render(report, args.format, verbose=args.verbose)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"error: --output: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if args.format != "text":  # a short human summary beside the machine report
            print(render(report, "text", verbose=False), end="", file=sys.stderr)
    else:
        stream = sys.stderr if report.load_problems and args.format == "text" else sys.stdout
        print(text, end="", file=stream)
    if report.load_problems:
        return EXIT_BUNDLE
    return EXIT_OK if report.ok else EXIT_TEST_FAILED
