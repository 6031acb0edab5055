"""The README's quick start runs as written, and every policy id the docs name is in policies/."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import jwt
import pytest

from pdp.bundle import load_bundle
from tests.support.gateway import ORDERS_KEY, bearer, check_request, ext_authz, metadata_of, token
from tests.support.server import REPO, ServerProcess

README = (REPO / "README.md").read_text(encoding="utf-8")
# Every page that may name the example bundle's policies: the README and docs/ (a policy id
# that moved to a docs page is checked there).
DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DOCS = "\n".join(page.read_text(encoding="utf-8") for page in DOC_PAGES)
POLICY_TESTS_DOC = (REPO / "docs" / "policy-tests.md").read_text(encoding="utf-8")
EXAMPLE = REPO / "policies"
BIN = Path(sys.executable).parent  # pdp and grpcurl, as `make` installs them
README_ADDRESS = "127.0.0.1:9191"
# `make` without reinstalling: the tests run in the virtualenv `make test` has just set up.
MAKE = 'make() { command make -o "$VENV/.installed" "$@"; }\n'


@dataclass
class Step:
    """One command of a README `sh` block and the comment lines just above it."""

    comment: str
    command: str


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def sh_steps(text: str) -> list[Step]:
    """The commands of the ```sh blocks in `text`, a command spanning lines while its quotes
    are open, each with the comment above it."""
    steps: list[Step] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        comment, pending = "", ""
        for line in block.splitlines():
            if not pending and line.lstrip().startswith("#"):
                comment += line.lstrip("# ") + " "
                continue
            pending += line + "\n"
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            steps.append(Step(comment.strip(), pending.strip()))
            comment, pending = "", ""
    return steps


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shell_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "VENV": str(BIN.parent),
        **extra,
    }


# --- policy ids --------------------------------------------------------------------------


def named_policy_ids() -> dict[str, str]:
    """Policy ids the README and docs/ name, each with the text that names it."""
    found: dict[str, str] = {}
    patterns = [
        r'"determining_policies":\s*\[([^\]]*)\]',
        r"determining: \[([^\]]*)\]",
        r"determining policies: (?:expected \[[^\]]*\] \(none\), got \[)?([\w, -]+)",
        r"for policy `([\w-]+)`",
        r"\(policy ([\w-]+)\)",
        r'"determining_policies":\s*\[\s*"([^"]+)"',
    ]
    for pattern in patterns:
        for match in re.finditer(pattern, DOCS):
            for name in re.split(r"[,\s]+", match.group(1).replace('"', "")):
                if name and name not in ("none", "expected"):
                    found.setdefault(name.strip("`"), match.group(0))
    story = section("The example bundle: an orders API, BOLA and BFLA")
    for row in re.findall(r"^\|[^|\n]*\|[^|\n]*\|([^|\n]*)\|$", story, flags=re.M):
        for name in re.findall(r"`([\w-]+)`", row):
            found.setdefault(name, row)
    plans = (REPO / "docs" / "plans.md").read_text(encoding="utf-8")  # GET /api/orders per role
    for row in re.findall(r"^\|(?:[^|\n]*\|){3}([^|\n]*)\|$", plans, flags=re.M):
        for name in re.findall(r"`([a-z]+(?:-[a-z0-9]+)+)`", row):
            found.setdefault(name, row)
    return found


def test_every_policy_id_the_docs_name_is_in_the_example_bundle() -> None:
    ids = {policy.id: policy for policy in load_bundle(EXAMPLE).policies}
    named = named_policy_ids()
    assert len(named) >= 12, sorted(named)  # the table alone names every rule of the bundle
    unknown = {name: text for name, text in named.items() if name not in ids}
    assert not unknown, f"the docs name policies that policies/ does not have: {unknown}"


def test_the_coverage_example_names_each_policy_where_it_is() -> None:
    ids = {policy.id: policy for policy in load_bundle(EXAMPLE).policies}
    pattern = r"^\s+\d+\s+(permit|forbid)\s+(\w+)\s+([\w-]+)\s+(\S+):(\d+)$"
    rows = re.findall(pattern, POLICY_TESTS_DOC, re.M)
    assert rows
    for effect, kind, name, file, line in rows:
        policy = ids[name]
        assert (policy.effect, policy.kind, policy.file, policy.line) == (
            effect,
            kind,
            file,
            int(line),
        )


# --- the quick start ---------------------------------------------------------------------


def _outcome(step: Step, answer: dict) -> None:
    """The decision the step's comment announces ("allow: ...", "deny, 403: ...")."""
    verdict = step.comment.split(":", 1)[0]
    if step.command.endswith("pdp.v1.Authorizer/IsAuthorized"):
        expected = "DECISION_ALLOW" if verdict == "allow" else "DECISION_DENY"
        assert answer["decision"] == expected, (step.comment, answer)
        policy = re.search(r"\(policy ([\w-]+)\)", step.comment)
        assert answer.get("determining_policies", []) == ([policy.group(1)] if policy else [])
    elif step.command.endswith("envoy.service.auth.v3.Authorization/Check"):
        if verdict == "allow":
            assert answer["status"] == {} and "ok_response" in answer, answer
        else:
            assert verdict == "deny, 403", step.comment
            assert answer["status"] == {"code": 7}, answer  # PERMISSION_DENIED
            assert answer["denied_response"]["status"] == {"code": "Forbidden"}, answer
    else:
        raise AssertionError(f"no expectation for {step.command}")


def _run_grpcurl(step: Step, address: str, env: dict[str, str]) -> None:
    assert README_ADDRESS in step.command
    done = bash(step.command.replace(README_ADDRESS, address), env)
    assert done.returncode == 0, (step.command, done.stderr)
    _outcome(step, json.loads(done.stdout))


def test_the_quick_start_grpcurl_calls_answer_as_their_comments_say(
    http_server: ServerProcess,
) -> None:
    """Against the worker's shared `pdp serve` over the example bundle (conftest.py)."""
    steps = [s for s in sh_steps(section("Quick start")) if "IsAuthorized" in s.command]
    assert [s.comment.split(":")[0] for s in steps] == ["deny", "allow"]
    assert "alice" in steps[0].command and '"id": "42"' in steps[1].command
    assert http_server.address is not None
    for step in steps:
        _run_grpcurl(step, http_server.address, shell_env())


@contextmanager
def make_run_dev(dev: Path) -> Iterator[str]:
    """`make run-dev` as the README runs it, in its own session; yields the address."""
    env = shell_env(DEV=str(dev), LISTEN="127.0.0.1:0", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        ["bash", "-c", MAKE + "make run-dev"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # make, bash and pdp serve: one group, stopped together
    )
    lines: list[str] = []
    listening = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if '"listening"' in line:
                listening.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not listening.wait(0.1):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        address = next(json.loads(x)["address"] for x in lines if '"listening"' in x)
        yield address
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_the_development_token_recipe_works_end_to_end(tmp_path: Path) -> None:
    """make run-dev, make -s dev-token SUB=42, and the README's Check calls with the token."""
    dev = tmp_path / "dev"
    steps = sh_steps(section("Quick start"))
    (token_step,) = [s for s in steps if s.command.startswith("TOKEN=")]
    checks = [s for s in steps if "Authorization/Check" in s.command]
    assert [s.comment.split(":")[0] for s in checks] == ["allow", "deny, 403"]
    assert any(s.command.startswith("make run-dev") for s in steps)
    with make_run_dev(dev) as address:
        key = dev / "dev-es256.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        env = shell_env(DEV=str(dev))
        # The README's own lines, in one shell: the token, then each Check with it.
        for check in checks:
            script = f"{MAKE}{token_step.command}\n{check.command.replace(README_ADDRESS, address)}"
            done = bash(script, env)
            assert done.returncode == 0, (script, done.stderr)
            _outcome(check, json.loads(done.stdout))
        minted = bash(MAKE + "make -s dev-token SUB=42", env)
        assert minted.returncode == 0, minted.stderr
        dev_token = minted.stdout.strip()
        assert jwt.get_unverified_header(dev_token) == {
            "alg": "ES256",
            "kid": "dev-es256",
            "typ": "JWT",
        }
        claims = jwt.decode(dev_token, options={"verify_signature": False})
        assert (claims["iss"], claims["aud"], claims["sub"]) == (
            "https://auth.shop.example/",
            "orders-api",
            "42",
        )
        assert 3590 <= claims["exp"] - claims["iat"] <= 3600
        with ext_authz(address) as stub:
            own = stub.Check(check_request("GET", "/api/orders/o-1001", bearer(dev_token)))
            assert own.status.code == grpc.StatusCode.OK.value[0], metadata_of(own)
            assert metadata_of(own)["principal"] == 'User::"42"'
            other = stub.Check(check_request("GET", "/api/orders/o-1003", bearer(dev_token)))
            assert other.status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
            assert other.denied_response.status.code == 403
            # The dev bundle trusts the dev key only, not the example bundle's own key.
            assert jwt.get_unverified_header(token("42", key=ORDERS_KEY))["kid"] != "dev-es256"
            foreign = stub.Check(check_request("GET", "/api/orders/o-1001", bearer(token("42"))))
            assert foreign.denied_response.status.code == 401


def test_the_dev_folder_is_git_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".dev/dev-es256.pem"], cwd=REPO, check=False
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, ".dev/ must be in .gitignore: it holds a private key"
