"""The server log: after `logs.configure`, everything on stderr is a JSON line, whoever logs."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.server import REPO

SCRIPT = """
import logging, warnings
from pdp import logs
logs.configure("info")
logging.getLogger("pdp.test").info("from pdp", extra={"event": "x"})
logging.getLogger("pdp.test").debug("below the level")
warnings.warn("a library warning")
logging.getLogger("grpc._cython").error("from grpc")
logging.getLogger("asyncio").info("below warning: dropped")
"""


def test_pdp_library_and_python_warnings_are_all_json_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # fails on plain text
    assert [(e["logger"], e["level"]) for e in lines] == [
        ("pdp.test", "info"),
        ("py.warnings", "warning"),
        ("grpc._cython", "error"),
    ]
    assert lines[0]["event"] == "x"
    assert "a library warning" in lines[1]["message"]
