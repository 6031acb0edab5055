"""The README's "Calling pdp" commands run as written (addresses swapped for free ones)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.server import ServerProcess
from tests.test_readme import MAKE, bash, section, sh_steps, shell_env

STEPS = sh_steps(section("Calling pdp"))


def _step(text: str) -> str:
    found = [s.command for s in STEPS if text in s.command]
    assert len(found) == 1, (text, [s.command for s in STEPS])
    return found[0]


def _run(command: str, **env: str) -> str:
    done = bash(MAKE + command, shell_env(**env))
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def test_the_python_client_and_embedded_commands(http_server: ServerProcess) -> None:
    """On the worker's shared `pdp serve` over the example bundle (conftest.py)."""
    assert http_server.address is not None
    out = _run(_step("AuthorizerClient").replace("127.0.0.1:9191", http_server.address))
    assert "allowed=True" in out and "customer-read-own-order" in out
    assert _run(_step("pdp.embedded")).strip() == "False"


def test_the_http_commands(http: str) -> None:
    """`pdp serve policies --http-listen ...` as the README runs it is the worker's shared
    server (conftest.py; its --max-batch 5 is not in these calls' way)."""
    serve = _step("pdp serve policies")
    assert "--http-listen 127.0.0.1:8181" in serve
    evaluation = _run(_step("/access/v1/evaluation").replace("127.0.0.1:8181", http))
    assert json.loads(evaluation)["decision"] is True
    v1 = _run(_step("/v1/is_authorized").replace("127.0.0.1:8181", http))
    assert json.loads(v1)["decision"] == "DECISION_ALLOW"


def test_the_forward_auth_command(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    _run(_step("make dev-bundle").split("#")[0], DEV=str(dev))
    assert "--http-listen 127.0.0.1:8182" in _step("pdp serve .dev/bundle")
    with ServerProcess(dev / "bundle", "--http-listen", "127.0.0.1:0") as server:
        assert server.http_address is not None
        command = _step("/forward-auth").replace("127.0.0.1:8182", server.http_address)
        out = _run(_step("TOKEN=") + "\n" + command, DEV=str(dev))
    assert re.match(r"HTTP/1.1 200 OK", out)
    assert 'x-pdp-principal: User::"42"' in out
