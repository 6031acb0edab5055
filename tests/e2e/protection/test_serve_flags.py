"""`pdp serve`'s protection flags: usage errors, unreadable secrets, and the metrics they feed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.decisionlog import Recorder
from pdp.metrics import PrometheusMetrics
from tests.support.cli import serve_usage_error
from tests.support.server import REPO

EXAMPLE = str(REPO / "policies")


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp", "serve", EXAMPLE, "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


USAGE_ERRORS = [
    (["--state", "memcached://x"], "use memory, redis://HOST:PORT/DB"),
    (["--state-ca", "/etc/hosts"], "--state-ca needs --state redis://"),
    (["--state", "redis://127.0.0.1:1/0", "--state-ca", "ca.pem"], "need a rediss://"),
    (["--state", "rediss://h:1/0", "--state-cert", "c.pem"], "go together"),
    (["--state-timeout", "0"], "--state-timeout"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_usage_errors(args: list[str], message: str) -> None:
    """In this process as far as `pdp serve`'s usage checks; the process is the next test."""
    found = serve_usage_error(EXAMPLE, "--listen", "127.0.0.1:0", *args)
    assert found.returncode == 2 and message in found.stderr, found.stderr


def test_a_usage_error_exits_2_as_a_process() -> None:
    args, message = USAGE_ERRORS[2]
    found = serve(*args)
    assert found.returncode == 2 and message in found.stderr, found.stderr


def test_an_unreadable_password_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    found = serve("--state", "redis://127.0.0.1:1/0", "--state-password-file", str(missing))
    assert found.returncode == 1
    line = json.loads(found.stderr.strip().splitlines()[-1])
    assert line["event"] == "start_failed"
    assert f"--state-password-file {missing}: cannot read" in line["message"]


def test_events_and_refusals_are_counted() -> None:
    metrics = PrometheusMetrics()
    recorder = Recorder(None, metrics)
    recorder.protection_event({"detector": "bola_enumeration", "action": "block"})
    recorder.rate_limited("read-order")
    recorder.rate_limited("read-order")
    metrics.protection_fallback(True)
    registry = metrics.registry
    events = {"detector": "bola_enumeration", "action": "block"}
    assert registry.get_sample_value("pdp_protection_events_total", events) == 1
    assert registry.get_sample_value("pdp_rate_limited_total", {"route": "read-order"}) == 2
    assert registry.get_sample_value("pdp_protection_state_fallback") == 1
