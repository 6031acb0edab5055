"""`pdp check BUNDLE`: load and validate a bundle, print every problem."""

from __future__ import annotations

import argparse

from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, load_or_report


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("check", help="load and validate a bundle")
    parser.add_argument("bundle", help="bundle directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    bundle = load_or_report(args.bundle)
    if bundle is None:
        return EXIT_BUNDLE
    schema = "with schema" if bundle.schema is not None else "without schema"
    print(
        f"ok: {bundle.name} {bundle.revision}: {bundle.policy_count} policies, "
        f"{bundle.link_count} template links, {bundle.entity_count} entities, {schema} "
        f"(validation {bundle.validation})"
    )
    return EXIT_OK
