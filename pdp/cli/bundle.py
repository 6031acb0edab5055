"""`pdp bundle build|sign|verify`: deterministic, signed bundle archives (docs/bundle.md)."""

from __future__ import annotations

import argparse
import sys

from pdp.bundle.archive import read_archive_file, write_file_atomically
from pdp.bundle.compiler import compile_bundle
from pdp.bundle.package import open_archive, pack, sha256_hex, sign_archive
from pdp.bundle.signing import ALGORITHMS, SigningKey, load_signing_key, load_verification_key
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_RUNTIME, load_or_report, report_problems
from pdp.errors import BundleError, KeyFileError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bundle", help="build, sign and verify bundle archives")
    commands = parser.add_subparsers(dest="bundle_command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="pack a bundle directory into a deterministic .tar.gz",
        description="Loads the bundle (exit 3 when it does not), then writes its content files "
        "as a tar.gz whose bytes depend only on file names and contents.",
    )
    build.add_argument("directory", help="bundle directory")
    build.add_argument("-o", "--output", required=True, metavar="ARCHIVE", help="file to write")
    _signing_arguments(build, required=False)
    build.set_defaults(run=run_build, parser=build)

    sign = commands.add_parser(
        "sign",
        help="sign an archive (in place unless -o)",
        description="Replaces the archive's .signatures.json with a JWS over the SHA-256 of "
        "every other file. Exit 3 when the archive is refused.",
    )
    sign.add_argument("archive")
    sign.add_argument("-o", "--output", metavar="ARCHIVE", help="write here instead")
    _signing_arguments(sign, required=True)
    sign.set_defaults(run=run_sign, parser=sign)

    verify = commands.add_parser(
        "verify",
        help="check an archive's signature and that its bundle loads",
        description="Exit 0 when the signature verifies with a trusted key, every file is "
        "covered and unchanged, and the bundle loads; 3 otherwise (every problem named).",
    )
    verify.add_argument("archive")
    verify.add_argument(
        "--verification-key",
        action="append",
        required=True,
        metavar="[KEY_ID=]PUB.pem",
        help="trusted public key (PEM), repeatable; with KEY_ID= it only checks that key id",
    )
    verify.set_defaults(run=run_verify, parser=verify)


def _signing_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--signing-key", required=required, metavar="KEY.pem", help="PEM private key"
    )
    parser.add_argument("--key-id", metavar="ID", help="key id written into the signature")
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        help="for an RSA key: RS256 (default) or PS256; other keys have one algorithm",
    )


def _signing_key(args: argparse.Namespace) -> SigningKey | None:
    if args.signing_key is None:
        if args.key_id or args.algorithm:
            args.parser.error("--key-id and --algorithm need --signing-key")
        return None
    if not args.key_id:
        args.parser.error("--signing-key needs --key-id")
    return load_signing_key(args.signing_key, args.key_id, args.algorithm or "")


def run_build(args: argparse.Namespace) -> int:
    try:
        key = _signing_key(args)
    except KeyFileError as exc:
        return _error(str(exc))
    bundle = load_or_report(args.directory)
    if bundle is None:
        return EXIT_BUNDLE
    data = pack(bundle.source, key)
    try:
        write_file_atomically(args.output, data)
    except OSError as exc:
        return _error(f"{args.output}: cannot write: {exc.strerror or exc}")
    signed = f", signed with key id {key.key_id} ({key.algorithm})" if key else ", unsigned"
    print(
        f"built {args.output}: {bundle.name} {bundle.revision}, {len(bundle.source.files)} files"
        f"{signed}, sha256 {sha256_hex(data)}"
    )
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    try:
        key = _signing_key(args)
    except KeyFileError as exc:
        return _error(str(exc))
    assert key is not None
    try:
        signed = sign_archive(read_archive_file(args.archive), key, args.archive)
    except BundleError as exc:
        return _refused(args.archive, exc)
    output = args.output or args.archive
    try:
        write_file_atomically(output, signed)
    except OSError as exc:
        return _error(f"{output}: cannot write: {exc.strerror or exc}")
    print(
        f"signed {output} with key id {key.key_id} ({key.algorithm}), sha256 {sha256_hex(signed)}"
    )
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    try:
        keys = [load_verification_key(spec) for spec in args.verification_key]
    except KeyFileError as exc:
        return _error(str(exc))
    try:
        opened = open_archive(read_archive_file(args.archive), keys, where=args.archive)
        bundle = compile_bundle(opened.source)
    except BundleError as exc:
        return _refused(args.archive, exc)
    print(
        f"ok: {args.archive}: {bundle.name} {bundle.revision}, signed with key id "
        f"{opened.key_id or '(none)'}, {len(opened.source.files)} files verified"
    )
    return EXIT_OK


def _refused(archive: str, exc: BundleError) -> int:
    report_problems(exc)
    print(f"error: {archive} is refused ({len(exc.problems)} problem(s))", file=sys.stderr)
    return EXIT_BUNDLE


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_RUNTIME
