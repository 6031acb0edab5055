"""Two `pdp serve --state redis://` processes sharing one real redis-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.gateway import bearer, check_request, ext_authz, token
from tests.support.protection import protected_bundle
from tests.support.redis import Redis, RedisUnavailable, redis_server
from tests.support.server import ServerProcess

PROTECTION = "limits:\n  - {name: per-user, key: principal, limit: 10, window: 1h}\n"


@pytest.fixture
def redis() -> Iterator[Redis]:
    try:
        with redis_server() as server:
            yield server
    except RedisUnavailable as exc:
        pytest.fail(f"a real redis-server is needed for these tests: {exc}")


def status_of(response) -> int:
    if response.HasField("ok_response"):
        return 200
    assert response.HasField("denied_response"), response  # always an answer, never an error
    return int(response.denied_response.status.code)


def protection_status(address: str) -> dict:
    found = run_cli("status", "--address", address, "--json")  # as a process: test_status.py
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout)["protection"]


def test_a_limit_holds_across_two_servers_and_a_dead_redis_falls_back(
    tmp_path: Path, redis: Redis
) -> None:
    bundle = protected_bundle(tmp_path, PROTECTION)
    state = ("--state", redis.url, "--state-timeout", "0.2")
    with ServerProcess(bundle, *state) as one, ServerProcess(bundle, *state) as two:
        assert one.address is not None and two.address is not None
        with ext_authz(one.address) as first, ext_authz(two.address) as second:
            own = check_request("GET", "/api/orders/o-1", bearer(token(sub="42")))
            answers = [(first if n % 2 else second).Check(own, timeout=10) for n in range(20)]
            assert sorted(status_of(a) for a in answers) == [200] * 10 + [429] * 10
            assert protection_status(one.address)["state"] == "redis"

            redis.kill()  # mid-run: the documented fallback, per replica
            others = check_request("GET", "/api/orders/o-1003", bearer(token(sub="42")))
            for stub in (first, second):
                for _ in range(12):
                    assert status_of(stub.Check(others, timeout=10)) in (403, 429)  # never 200
                fresh = check_request("GET", "/api/orders/o-1003", bearer(token(sub="43")))
                statuses = [status_of(stub.Check(fresh, timeout=10)) for _ in range(11)]
                assert statuses == [200] * 10 + [429]  # this replica's own limit of 10
            found = protection_status(two.address)
            assert found["state"] == "memory_fallback"
            assert int(found["fallbacks"]) >= 1 and found["last_error"]
    assert "protection_state_fallback" in one.stderr
