"""The Recorder the edges call, in process over a real pipe and a real registry.

`Check` hands its gateway fields over; the line and the metrics must carry them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pdp.bundle.manifest import LogRules
from pdp.decisionlog import (
    CHECK,
    MASKED,
    MAX_LINE_BYTES,
    DecisionLog,
    GatewayFields,
    Masker,
    Recorder,
    Sampling,
    Sink,
)
from pdp.metrics import PrometheusMetrics
from pdp.model import AuthzRequest, Decision, EntityRef

ALICE = EntityRef("User", "alice")


def decision(allowed: bool = False, errors: tuple[str, ...] = ()) -> Decision:
    return Decision(allowed, (), (), errors, "d-1", "r1")


class Pipe:
    """A real pipe: the decision log writes one end, the test reads the other."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.buffer = b""

    def lines(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while self.buffer.count(b"\n") < count:
            assert time.monotonic() < deadline, "timed out reading the pipe"
            self.buffer += os.read(self.read_fd, 1 << 16)
        return [json.loads(line) for line in self.buffer.splitlines()[:count]]


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    pipe = Pipe()
    yield pipe
    os.close(pipe.read_fd)
    os.close(pipe.write_fd)


@pytest.fixture
def recorder(pipe: Pipe) -> Iterator[Recorder]:
    metrics = PrometheusMetrics()
    log = DecisionLog(Sink("pipe", fd=pipe.write_fd, owned=False), metrics=metrics)
    log.start()
    yield Recorder(log, metrics)
    log.stop()


def samples(recorder: Recorder) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert isinstance(recorder.metrics, PrometheusMetrics)
    text = generate_latest(recorder.metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_check_with_a_failed_credential(recorder: Recorder, pipe: Pipe) -> None:
    gateway = GatewayFields(
        method="GET",
        path="/api/users/43/orders",
        source_address="10.0.0.7:51234",
        identity_kind="jwt",
        token_kid="k1",
        token_iss="https://issuer.example",
        http_status=401,
        authn_failure="expired",
    )
    recorder.decision(CHECK, time.perf_counter(), None, decision(), None, gateway)
    (entry,) = pipe.lines(1)
    assert entry["api"] == "Check"
    assert entry["principal"] is None and entry["action"] is None
    assert entry["bundle_name"] is None and entry["bundle_revision"] == "r1"
    assert {k: entry[k] for k in ("method", "path", "route", "identity_kind")} == {
        "method": "GET",
        "path": "/api/users/43/orders",
        "route": None,
        "identity_kind": "jwt",
    }
    assert entry["source_address"] == "10.0.0.7:51234"
    assert (entry["token_kid"], entry["token_iss"]) == ("k1", "https://issuer.example")
    assert "token_jti" not in entry  # absent, not null, when the token had none
    assert (entry["http_status"], entry["authn_failure"]) == (401, "expired")
    values = samples(recorder)
    assert values[("pdp_authn_failures_total", frozenset({("reason", "expired")}))] == 1
    assert values[("pdp_decisions_total", frozenset({("api", "Check"), ("decision", "deny")}))]


def test_check_allowed_and_unknown_routes(recorder: Recorder, pipe: Pipe) -> None:
    request = AuthzRequest(ALICE, EntityRef("Action", "readOrder"), EntityRef("Order", "o-1"))
    allowed = GatewayFields(
        method="GET", path="/orders/o-1", route="GET /orders/{id}", identity_kind="mtls",
        http_status=200,
    )  # fmt: skip
    recorder.decision(CHECK, time.perf_counter(), None, decision(True), request, allowed)
    unknown = GatewayFields(
        method="POST", path="/nowhere", principal=ALICE, http_status=403, unknown_route=True
    )
    recorder.decision(CHECK, time.perf_counter(), None, decision(), None, unknown)
    first, second = pipe.lines(2)
    assert (first["principal"], first["resource"], first["route"]) == (
        'User::"alice"',
        'Order::"o-1"',
        "GET /orders/{id}",
    )
    assert second["principal"] == 'User::"alice"' and second["unknown_route"] is True
    values = samples(recorder)
    assert values[("pdp_unknown_endpoint_requests_total", frozenset())] == 1
    assert values[("pdp_decisions_total", frozenset({("api", "Check"), ("decision", "allow")}))]


def test_free_text_reasons_cannot_blow_up_label_cardinality(recorder: Recorder) -> None:
    gateway = GatewayFields(authn_failure="Signature verification failed for token eyJ...")
    recorder.decision(CHECK, time.perf_counter(), None, decision(), None, gateway)
    assert samples(recorder)[("pdp_authn_failures_total", frozenset({("reason", "other")}))] == 1


def test_oversized_lines_lose_their_bulk_not_their_identity(recorder: Recorder, pipe: Pipe) -> None:
    huge = decision(errors=("e" * (MAX_LINE_BYTES + 1),))
    recorder.decision("IsAuthorized", time.perf_counter(), None, huge, None)
    (entry,) = pipe.lines(1)
    assert entry["truncated"] is True and "errors" not in entry
    assert entry["decision_id"] == "d-1"


def test_masker_never_changes_its_input() -> None:
    rules = LogRules.parse({"mask": ["context.a.*"], "drop": ["context.**.b"]})
    value = {"a": {"x": 1, "y": [2]}, "c": [{"b": 1, "d": 2}], "b": 3}
    masked = Masker(rules).apply("context", value)
    assert masked == {"a": {"x": MASKED, "y": MASKED}, "c": [{"d": 2}]}
    assert value == {"a": {"x": 1, "y": [2]}, "c": [{"b": 1, "d": 2}], "b": 3}


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("yes", "must be a mapping"),
        ({"context": "yes"}, "decision_log.context must be true or false"),
        ({"mask": "context.a"}, "must be a list"),
        ({"mask": ["a.b"]}, "under context. or attrs."),
        ({"drop": ["context..b"]}, "under context. or attrs."),
        ({"drop": ["context.**"]}, "under context. or attrs."),
        ({"redact": []}, "unknown key 'redact'"),
    ],
)
def test_rules_name_their_problem(section: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        LogRules.parse(section)


@pytest.mark.parametrize(
    ("text", "rate"), [("all", 1.0), ("deny-only", 0.0), ("0.25", 0.25), ("1", 1.0)]
)
def test_sampling_flags(text: str, rate: float) -> None:
    sampling = Sampling.parse(text)
    assert sampling.allow_rate == rate
    assert sampling.keep(allowed=False)


def test_credentials_quoted_in_errors_are_masked(recorder: Recorder, pipe: Pipe) -> None:
    # Cedar quotes the context it rejects: a malformed batch item's error carried the token.
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl"
    errors = (
        f'invalid request: requests[0].context: context `{{auth: "Bearer {token}"}}` is not '
        'valid for `Action::"read"`',
        "invalid request: requests[1].context: `Basic dXNlcjpwYXNz` is not a Long",
    )
    recorder.decision("BatchIsAuthorized", time.perf_counter(), None, decision(errors=errors))
    (entry,) = pipe.lines(1)
    assert entry["errors"] == [
        'invalid request: requests[0].context: context `{auth: "[masked]"}` is not valid for '
        '`Action::"read"`',
        "invalid request: requests[1].context: `[masked]` is not a Long",
    ]
    assert token.split(".")[1] not in pipe.buffer.decode()
