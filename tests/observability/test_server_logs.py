"""Server logs on stderr are JSON lines only: a library's Python warning becomes one too."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.server import REPO

# What a library does: warn, as PyJWT does with a short HMAC key when not told to refuse it.
SCRIPT = """
import logging, warnings
import jwt
from pdp import logs
logs.configure("info")
warnings.warn("The HMAC key is 6 bytes long", jwt.InsecureKeyLengthWarning)
logging.getLogger("pdp.server").info("still serving", extra={"event": "probe"})
"""


def test_a_python_warning_is_a_json_log_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    warning, info = lines
    assert warning["level"] == "warning" and warning["logger"] == "py.warnings"
    assert warning["event"] == "python_warning"
    assert "InsecureKeyLengthWarning: The HMAC key is 6 bytes long" in warning["message"]
    assert info["event"] == "probe"
    assert done.stdout == ""  # stdout belongs to the decision log
