"""`pdp ARGS` run in this process through `pdp.cli.main.main`, answered as `run_pdp` answers.

For tests whose subject is a command's logic, not the process around it: the interpreter
start and imports (~0.5 s of CPU per `python -m pdp`) are skipped. Each command keeps at least
one test through `tests.support.bundles.run_pdp`, a real subprocess. Not for `pdp serve`."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess

from pdp.cli.main import main
from tests.support.paths import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`pdp ARGS` from the repository root; stdout, stderr and the exit status as text."""
    assert args and args[0] != "serve", "pdp serve runs as a process: use ServerProcess"
    stdout, stderr = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main(list(args))
            except SystemExit as exc:  # argparse's usage errors and --help
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["pdp", *args], status, stdout.getvalue(), stderr.getvalue())
