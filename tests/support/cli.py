"""`pdp ARGS` run in this process through `pdp.cli.main.main`, answered as `run_pdp` answers.

For tests whose subject is a command's logic, not the process around it: the interpreter
start and imports (~0.5 s of CPU per `python -m pdp`) are skipped. Each command keeps at least
one test through `tests.support.bundles.run_pdp`, a real subprocess. Not for `pdp serve`,
except its usage errors (`serve_usage_error`), which come before anything starts."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Callable

from pdp.cli import serve
from pdp.cli.main import build_parser, main
from tests.support.paths import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`pdp ARGS` from the repository root; stdout, stderr and the exit status as text."""
    assert args and args[0] != "serve", "pdp serve runs as a process: use ServerProcess"
    return _run(args, main)


def serve_usage_error(*args: str) -> subprocess.CompletedProcess[str]:
    """`pdp serve ARGS` in this process as far as its usage checks: the parser's and
    `serve.check_usage` (what `serve.run` checks before anything starts). Arguments that pass
    them fail the test here, never serve."""

    def checked(argv: list[str]) -> int:
        serve.check_usage(build_parser().parse_args(argv))
        raise AssertionError(f"pdp {' '.join(argv)}: no usage error")

    return _run(("serve", *args), checked)


def _run(
    args: tuple[str, ...], command: Callable[[list[str]], int]
) -> subprocess.CompletedProcess[str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = command(list(args))
            except SystemExit as exc:  # argparse's usage errors and --help
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["pdp", *args], status, stdout.getvalue(), stderr.getvalue())
