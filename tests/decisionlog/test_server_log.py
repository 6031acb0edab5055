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
import jwt
warnings.warn("The HMAC key is 6 bytes long", jwt.InsecureKeyLengthWarning)
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
    assert lines[1]["event"] == "python_warning"
    assert "InsecureKeyLengthWarning: The HMAC key is 6 bytes long" in lines[1]["message"]
    assert done.stdout == ""  # stdout belongs to the decision log
