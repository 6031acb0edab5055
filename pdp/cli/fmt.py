"""`pdp fmt [--check] PATH...`: format .cedar files with Cedar's own formatter."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cedarpy

from pdp.bundle.diagnose import locate_parse_errors, parser_hazard_problem
from pdp.bundle.files import is_ignored
from pdp.bundle.loader import SourceFile


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fmt", help="format .cedar files in place")
    parser.add_argument("paths", nargs="+", help=".cedar files or directories")
    parser.add_argument("--check", action="store_true", help="only list files that would change")
    parser.add_argument("--line-width", type=_width, default=80)
    parser.add_argument("--indent-width", type=_width, default=2)
    parser.set_defaults(run=run)


def _width(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def cedar_files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*.cedar"))
                if not any(is_ignored(part) for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    changed, failed = [], False
    for path in cedar_files(args.paths):
        try:
            original = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            print(f"{path}: cannot read: {reason}", file=sys.stderr)
            failed = True
            continue
        hazard = parser_hazard_problem(SourceFile(str(path), original))
        if hazard is not None:  # cedarpy's parser would crash the process on it
            print(hazard, file=sys.stderr)
            failed = True
            continue
        try:
            formatted = cedarpy.format_policies(original, args.line_width, args.indent_width)
        except ValueError as exc:  # located as `pdp check` does: file:line:col of the statement
            for problem in locate_parse_errors(SourceFile(str(path), original), str(exc)):
                print(problem, file=sys.stderr)
            failed = True
            continue
        if not formatted.endswith("\n"):
            formatted += "\n"
        if formatted == original:
            continue
        changed.append(path)
        if args.check:
            print(f"{path}: would reformat")
        else:
            path.write_text(formatted, encoding="utf-8")
            print(f"{path}: reformatted")
    if failed:
        return 1
    return 1 if args.check and changed else 0
