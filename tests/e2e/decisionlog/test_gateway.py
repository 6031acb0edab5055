"""Envoy `Check` through a real `pdp serve`: gateway log fields, metrics, and no credential leaks.

Tokens are real JWTs and API keys of the example bundle (tests/support/gateway.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import (
    REPORTING_KEY,
    bearer,
    check_request,
    ext_authz,
    metadata_of,
    token,
)
from tests.support.observability import (
    TIMEOUT,
    file_entries,
    metrics_address,
    scrape,
    series,
    value,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """The example bundle with context logging on, a file decision log and metrics."""
    folder = tmp_path_factory.mktemp("gateway")
    bundle = folder / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, bundle)
    with (bundle / "manifest.yaml").open("a") as manifest:
        manifest.write("decision_log:\n  context: true\n")
    path = folder / "decisions.log"
    args = ("--decision-log", str(path), "--metrics", "127.0.0.1:0")
    with ServerProcess(bundle, *args) as server:
        yield server, path


def test_credentials_never_reach_the_log_or_server_output(
    logged: tuple[ServerProcess, Path],
) -> None:
    server, path = logged
    good = token("42", jti="obs-good")
    expired = token("42", jti="obs-expired", exp=1_000_000_000, iat=999_999_000)
    head, body, signature = token("42", jti="obs-tampered").split(".")
    tampered = f"{head}.{body}.{signature[::-1]}"
    wrong_key = "pdp-not-a-known-key-1234567890"
    query = f"?access_token={good}&api_key={REPORTING_KEY}"
    calls = [
        ("GET", "/api/users/42/orders", bearer(good)),
        ("GET", "/api/users/42/orders" + query, bearer(good)),
        ("GET", "/api/users/42/orders", bearer(expired)),
        ("GET", "/api/users/42/orders", bearer(tampered)),
        ("GET", "/api/users/42/orders", {"x-api-key": REPORTING_KEY}),
        ("GET", "/api/users/42/orders", {"x-api-key": wrong_key}),
        ("GET", "/no/such/endpoint", bearer(good)),
    ]
    ids = []
    with ext_authz(server.address or "") as stub:
        for method, target, headers in calls:
            response = stub.Check(check_request(method, target, headers), timeout=TIMEOUT)
            ids.append(metadata_of(response)["decision_id"])
        entries = file_entries(path, len(calls))
        samples = scrape(metrics_address(server))

    by_id = {e["decision_id"]: e for e in entries}
    assert set(ids) <= set(by_id)
    allowed, queried, late, forged, keyed, unknown_key, nowhere = (by_id[i] for i in ids)
    assert allowed["api"] == "Check" and allowed["decision"] == "allow"
    assert allowed["identity_kind"] == "jwt" and allowed["token_jti"] == "obs-good"
    assert allowed["http_status"] == 200 and allowed["path"] == "/api/users/42/orders"
    assert allowed["principal"] == 'User::"42"' and allowed["route"]
    assert allowed["source_address"].startswith("10.1.2.3")
    assert queried["path"] == "/api/users/42/orders"  # the query is not part of the path
    for failed in (late, forged, unknown_key):
        assert failed["decision"] == "deny" and failed["http_status"] == 401
        assert failed["authn_failure"]
    assert late.get("token_jti") in (None, "obs-expired")
    assert keyed["identity_kind"] == "api_key"
    assert nowhere["unknown_route"] is True and nowhere["route"] is None

    reasons = series(samples, "pdp_authn_failures_total")
    assert sum(reasons.values()) == 3
    assert value(samples, "pdp_unknown_endpoint_requests_total") == 1
    checks = sum(
        value(samples, "pdp_decisions_total", api="Check", decision=d) for d in ("allow", "deny")
    )
    assert checks == len(calls)
    assert value(samples, "pdp_request_duration_seconds_count", api="Check") == len(calls)

    everything = path.read_text() + server.stdout + server.stderr
    for secret in (good, expired, tampered, REPORTING_KEY, wrong_key):
        assert secret not in everything
        assert secret.split(".")[-1] not in everything  # not even a token's signature
