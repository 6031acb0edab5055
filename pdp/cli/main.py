"""The `pdp` entry point: parses arguments and dispatches to one subcommand module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pdp
from pdp.cli import (
    authorize,
    bundle,
    check,
    devbundle,
    fmt,
    plan,
    replay,
    serve,
    status,
    test,
    token,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdp", description="A policy decision point for the Cedar policy language."
    )
    parser.add_argument("--version", action="version", version=f"pdp {pdp.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        serve,
        check,
        test,
        authorize,
        plan,
        fmt,
        status,
        bundle,
        replay,
        devbundle,
        token,
    ):
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
