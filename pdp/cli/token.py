"""`pdp token --key PEM --sub SUB ...`: sign a development JWT with PyJWT and print it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pdp import devkit, jsonkeys
from pdp.cli import argtypes
from pdp.cli.common import EXIT_OK, EXIT_USAGE
from pdp.errors import DevkitError

MAX_TTL_SECONDS = 86_400


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="sign a development JWT (e.g. with the key of pdp dev-bundle)",
        description="Prints a JWT signed with --key (ES256/384/512, RS256 or EdDSA, from the "
        "key's type). With --bundle, iss, aud and kid come from the routes.yaml issuer whose "
        "JWKS file holds the key's public half; else give --iss, --aud and --kid.",
    )
    parser.add_argument("--key", required=True, metavar="PEM", help="unencrypted private key")
    parser.add_argument("--bundle", metavar="DIR", help="take iss, aud and kid from this bundle")
    parser.add_argument("--iss", help="issuer (the routes.yaml issuer)")
    parser.add_argument("--aud", help="audience (one of the issuer's audiences)")
    parser.add_argument("--kid", help="key id (as in the JWKS)")
    parser.add_argument("--sub", default="42", help="subject: the principal id (default 42)")
    parser.add_argument(
        "--ttl",
        type=argtypes.whole(1, MAX_TTL_SECONDS),
        default=3600,
        metavar="SECONDS",
        help="lifetime (default %(default)s)",
    )
    parser.add_argument(
        "--claims",
        metavar="JSON",
        help='more claims, a JSON object that may override the others: {"roles": ["admin"]}',
    )
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    explicit = (args.iss, args.aud, args.kid)
    if args.bundle is None and None in explicit:
        args.parser.error("give --bundle, or all of --iss, --aud and --kid")
    if args.bundle is not None and explicit != (None, None, None):
        args.parser.error("--bundle sets iss, aud and kid: give either --bundle or those")
    extra = _claims(args.parser, args.claims)
    try:
        key = devkit.load_key(Path(args.key))
        if args.bundle is not None:
            issuer = devkit.issuer_for(Path(args.bundle), key)
        else:
            issuer = devkit.Issuer(args.iss, args.aud, args.kid)
        claims = devkit.claims_for(issuer.issuer, issuer.audience, args.sub, args.ttl)
        print(devkit.sign(key, issuer.kid, {**claims, **extra}))
    except DevkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _claims(parser: argparse.ArgumentParser, text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    duplicate = jsonkeys.find_duplicate(text)
    if duplicate is not None:
        where = f"{duplicate.path.lstrip('.')}: " if duplicate.path else ""
        parser.error(f"argument --claims: {where}{duplicate.message}")
    try:
        value = json.loads(text)
    except ValueError as exc:
        parser.error(f"argument --claims: not JSON: {exc}")
    if not isinstance(value, dict):
        parser.error("argument --claims: must be a JSON object")
    return value
