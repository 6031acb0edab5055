"""`pdp fmt [--check] PATH...`: format .cedar files with Cedar's own formatter."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

import cedarpy

from pdp.bundle.diagnose import locate_parse_errors, parser_hazard_problem
from pdp.bundle.files import MAX_FILE_BYTES, is_ignored, read_at_most, too_large
from pdp.bundle.loader import SourceFile
from pdp.bundle.locate import line_comments, split_statements
from pdp.cli import argtypes


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("fmt", help="format .cedar files in place")
    parser.add_argument("paths", nargs="+", help=".cedar files or directories")
    parser.add_argument("--check", action="store_true", help="only list files that would change")
    parser.add_argument(
        "--line-width", type=argtypes.whole(1, 1000), default=80, metavar="N", help="(1 to 1000)"
    )
    parser.add_argument(
        "--indent-width", type=argtypes.whole(0, 32), default=2, metavar="N", help="(0 to 32)"
    )
    parser.set_defaults(run=run)


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


def _read_text(path: Path) -> str:
    """The file's text, its size checked before it is read (as the bundle loader does)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ValueError(too_large(info.st_size, MAX_FILE_BYTES))
        data = read_at_most(fd, MAX_FILE_BYTES)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(too_large(len(data), MAX_FILE_BYTES))
    return data.decode("utf-8")


def _lost_comment(original: str, formatted: str) -> tuple[int, str] | None:
    """The first comment of `original` that `formatted` does not keep, in order; else None."""
    kept = [text for _, text in line_comments(formatted)]
    for index, (line, text) in enumerate(line_comments(original)):
        if index >= len(kept) or kept[index] != text:
            return line, text
    return None


def run(args: argparse.Namespace) -> int:
    changed, failed = [], False
    for path in cedar_files(args.paths):
        try:
            original = _read_text(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            print(f"{path}: cannot read: {reason}", file=sys.stderr)
            failed = True
            continue
        if not split_statements(original):
            continue  # only comments and blanks: nothing to format, nothing to lose
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
        lost = _lost_comment(original, formatted)
        if lost is not None:  # refuse rather than drop text the author wrote
            line, text = lost
            print(
                f"{path}:{line}: not reformatted: Cedar's formatter would drop or move the "
                f"comment {text!r}; format this file by hand",
                file=sys.stderr,
            )
            failed = True
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
