"""`pdp dev-bundle [SOURCE] [--out DIR]`: a development key, and a bundle copy trusting it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdp import devkit
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, load_or_report
from pdp.errors import DevkitError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev-bundle",
        help="make a development key and a copy of a bundle that trusts only it",
        description="Writes DIR/dev-es256.pem (a new ES256 key, mode 0600; an existing one is "
        "kept) and DIR/bundle, a copy of SOURCE whose ES256 issuers' JWKS files in routes.yaml "
        "hold only that key's public half, so `pdp token` can sign tokens it accepts. For "
        "development only: never deploy the copy or the key. Exit 0 ok, 3 when SOURCE has no "
        "such issuer or the copy does not load.",
    )
    parser.add_argument(
        "source", nargs="?", default="policies", help="bundle to copy (default %(default)s)"
    )
    parser.add_argument(
        "--out", default=".dev", metavar="DIR", help="where to write (default %(default)s)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        made = devkit.make_dev_bundle(Path(args.source), Path(args.out))
    except DevkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUNDLE
    if load_or_report(str(made.bundle)) is None:
        return EXIT_BUNDLE
    print(
        f"key:    {made.key_path} ({'new' if made.key_created else 'kept'}, kid {devkit.DEV_KID})"
    )
    print(f"bundle: {made.bundle} (trusts only that key in {', '.join(made.jwks_files)})")
    print(f"serve:  pdp serve {made.bundle}")
    print(f"token:  pdp token --key {made.key_path} --bundle {made.bundle} --sub 42")
    return EXIT_OK
