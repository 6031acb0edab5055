"""Protection through a real Check server: limits, detectors, blocks, allow-lists, observe."""

from __future__ import annotations

from pathlib import Path

from pdp.bundle import load_bundle
from tests.support.gateway import headers_of, metadata_of
from tests.support.protection import (
    Clock,
    Events,
    bearer,
    check_request,
    gateway,
    protected_bundle,
    token,
)

LIMITS = """
limits:
  - name: per-user
    key: principal
    limit: 5
    window: 1m
"""

BOLA = """
detectors:
  bola_enumeration:
    window: 5m
    distinct_ids: 20
    denied_fraction: 0.5
    action: {action}
    cooldown: 10m
"""


def test_the_limit_plus_first_request_in_a_window_is_429_with_the_draft_headers(
    tmp_path: Path,
) -> None:
    clock, events = Clock(), Events()
    with gateway(protected_bundle(tmp_path, LIMITS), clock, events) as gw:
        answers = [gw.check("/api/orders/o-1") for _ in range(5)]
        assert [gw.status_of(a) for a in answers] == [200] * 5
        over = gw.check("/api/orders/o-1")
        assert gw.status_of(over) == 429
        headers = headers_of(over.denied_response.headers)
        assert headers["ratelimit-policy"] == '"per-user";q=5;w=60'
        assert headers["retry-after"] == "12"  # one token of 5 per 60 s
        assert headers["ratelimit"] == '"per-user";r=0;t=12'
        assert '"error": "rate_limited"' in over.denied_response.body
        assert metadata_of(over)["reason"] == "limited"
        assert events.limited == ["read-order"]
        clock.advance(12)  # one token back, not two
        assert gw.status_of(gw.check("/api/orders/o-1")) == 200
        assert gw.status_of(gw.check("/api/orders/o-1")) == 429
        # Another principal has its own bucket.
        assert gw.status_of(gw.check("/api/orders/o-1003", sub="43")) == 200


def test_a_denied_request_over_the_limit_is_still_429_and_never_an_allow(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    with gateway(protected_bundle(tmp_path, LIMITS), clock, events) as gw:
        for _ in range(5):
            assert gw.status_of(gw.check("/api/orders/o-1003")) == 403  # 43's order
        assert gw.status_of(gw.check("/api/orders/o-1")) == 429


def test_bola_enumeration_raises_exactly_one_event_and_block_answers_429_until_the_cooldown(
    tmp_path: Path,
) -> None:
    clock, events = Clock(), Events()
    bundle = protected_bundle(tmp_path, BOLA.format(action="block"), orders=10)
    with gateway(bundle, clock, events) as gw:
        # 50 distinct ids: 10 owned (allowed), 40 not (denied): 80% denied.
        ids = [f"o-{n}" for n in range(1, 11)] + [f"o-{n}" for n in range(9000, 9040)]
        ids = [ids[i] for i in sorted(range(50), key=lambda i: (i % 5, i))]  # interleaved
        statuses = []
        for order in ids:
            statuses.append(gw.status_of(gw.check(f"/api/orders/{order}")))
            clock.advance(1)
        fired = events.of("bola_enumeration")
        assert len(fired) == 1
        event = fired[0]
        assert event["action"] == "block" and event["principal"] == 'User::"42"'
        assert event["route"] == "read-order"
        assert event["counts"]["ids"] == 21 and event["counts"]["requests"] == 21
        assert event["counts"]["denied"] >= 0.5 * 21
        assert len(event["sample_ids"]) == 5
        assert statuses.count(429) == 50 - 21  # every request after the one that fired
        # Blocked even for an order the principal owns, until the cool-down ends.
        clock.advance(500)
        blocked = gw.check("/api/orders/o-1")
        assert gw.status_of(blocked) == 429
        assert "ratelimit-policy" not in headers_of(blocked.denied_response.headers)
        assert '"error": "blocked"' in blocked.denied_response.body
        clock.advance(600)
        assert gw.status_of(gw.check("/api/orders/o-1")) == 200


def test_bola_alert_changes_no_answer(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    with gateway(protected_bundle(tmp_path, BOLA.format(action="alert")), clock, events) as gw:
        statuses = [gw.status_of(gw.check(f"/api/orders/o-{9000 + n}")) for n in range(50)]
        assert statuses == [403] * 50
        assert len(events.of("bola_enumeration")) == 1
        assert events.of("bola_enumeration")[0]["action"] == "alert"


def test_token_spread_from_six_addresses(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    spread = "detectors:\n  token_spread: {window: 10m, addresses: 5, action: alert}\n"
    with gateway(protected_bundle(tmp_path, spread), clock, events) as gw:
        same = bearer(token(sub="42"))
        for n in range(6):
            gw.stub.Check(check_request("GET", "/api/orders/o-1", same, source_ip=f"10.9.0.{n}"))
        fired = events.of("token_spread")
        assert len(fired) == 1
        assert fired[0]["counts"]["addresses"] == 6
        assert fired[0]["subject"].startswith("t:") and len(fired[0]["subject"]) == 34
        assert fired[0]["sample_addresses"][:2] == ["10.9.0.0", "10.9.0.1"]
        assert same["authorization"][7:] not in str(events.events)  # never the token


def test_auth_failures_from_one_address_block_it(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    auth = (
        "detectors:\n  auth_failures: {window: 1m, unauthenticated: 3, action: block, "
        "cooldown: 1m, status: 403}\n"
    )
    with gateway(protected_bundle(tmp_path, auth), clock, events) as gw:
        bad = {"authorization": "Bearer not-a-jwt"}
        statuses = [gw.status_of(gw.check("/api/orders/o-1", sub=None, headers=bad, ip="10.7.7.7"))
                    for _ in range(5)]  # fmt: skip
        assert statuses == [401] * 5  # still 401: identity comes first, and is counted
        assert len(events.of("auth_failures")) == 1
        assert events.of("auth_failures")[0]["subject"] == "a:10.7.7.7"
        # A valid token from the blocked address: the block's status, 403.
        assert gw.status_of(gw.check("/api/orders/o-1", ip="10.7.7.7")) == 403
        assert gw.status_of(gw.check("/api/orders/o-1", ip="10.7.7.8")) == 200
        clock.advance(61)
        assert gw.status_of(gw.check("/api/orders/o-1", ip="10.7.7.7")) == 200


def test_an_allow_listed_principal_or_address_is_never_limited_or_blocked(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    text = (
        LIMITS
        + BOLA.format(action="block")
        + "allow:\n  principals: ['User::\"42\"']\n  addresses: [192.0.2.0/24]\n"
    )
    with gateway(protected_bundle(tmp_path, text), clock, events) as gw:
        statuses = {gw.status_of(gw.check(f"/api/orders/o-{9000 + n}")) for n in range(60)}
        assert statuses == {403}
        assert gw.status_of(gw.check("/api/orders/o-1")) == 200
        assert events.events == []
        for _ in range(10):  # User 43 from an allow-listed network
            assert gw.status_of(gw.check("/api/orders/o-1003", sub="43", ip="192.0.2.7")) == 200


def test_observe_mode_never_changes_an_answer(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    text = "mode: observe\n" + LIMITS + BOLA.format(action="block")
    with gateway(protected_bundle(tmp_path, text), clock, events) as gw:
        ids = [f"o-{n}" for n in range(1, 11)] * 3 + [f"o-{9000 + n}" for n in range(40)]
        statuses = [gw.status_of(gw.check(f"/api/orders/{order}")) for order in ids]
        assert statuses == [200] * 30 + [403] * 40  # exactly what the policy says
        kinds = {(e["detector"], e["action"]) for e in events.events}
        assert ("rate_limit", "alert") in kinds
        assert ("bola_enumeration", "alert") in kinds
        assert all(e["mode"] == "observe" for e in events.events)
        assert events.limited == []


def test_throttle_applies_a_tighter_limit_for_the_cooldown(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    text = (
        "detectors:\n  bola_enumeration: {window: 5m, distinct_ids: 5, denied_fraction: 0.5, "
        "action: throttle, cooldown: 5m, throttle: {limit: 1, window: 1m}}\n"
    )
    with gateway(protected_bundle(tmp_path, text), clock, events) as gw:
        for n in range(6):
            assert gw.status_of(gw.check(f"/api/orders/o-{9000 + n}")) == 403
        assert events.of("bola_enumeration")[0]["action"] == "throttle"
        first = gw.check("/api/orders/o-1")
        assert gw.status_of(first) == 200
        throttled = gw.check("/api/orders/o-1")
        assert gw.status_of(throttled) == 429
        headers = headers_of(throttled.denied_response.headers)
        assert headers["ratelimit-policy"] == '"bola_enumeration-throttle";q=1;w=60'
        clock.advance(301)
        assert [gw.status_of(gw.check("/api/orders/o-1")) for _ in range(3)] == [200] * 3


def test_limits_by_principal_type_and_role(tmp_path: Path) -> None:
    clock, events = Clock(), Events()
    text = """
limits:
  - {name: admins, key: principal, limit: 2, window: 1m, roles: [admin]}
  - {name: users, key: principal, limit: 4, window: 1m, principal_types: [User]}
"""
    with gateway(protected_bundle(tmp_path, text), clock, events) as gw:
        admin = bearer(token(sub="admin-ada", roles=["admin"]))
        answers = [gw.stub.Check(check_request("GET", "/api/orders/o-1", admin)) for _ in range(3)]
        assert gw.status_of(answers[2]) == 429
        assert '"admins"' in headers_of(answers[2].denied_response.headers)["ratelimit-policy"]
        assert [gw.status_of(gw.check("/api/orders/o-1")) for _ in range(5)] == [200] * 4 + [429]


def test_buckets_and_blocks_survive_a_reload_and_a_changed_limit_applies_at_once(
    tmp_path: Path,
) -> None:
    clock, events = Clock(), Events()
    bundle = protected_bundle(tmp_path, LIMITS)
    with gateway(bundle, clock, events) as gw:
        assert [gw.status_of(gw.check("/api/orders/o-1")) for _ in range(6)] == [200] * 5 + [429]
        # Raised to 10 a minute: the empty bucket stays empty, and refills at the new rate.
        (bundle / "protection.yaml").write_text(LIMITS.replace("limit: 5", "limit: 10"))
        gw.store.activate(load_bundle(bundle))
        assert gw.status_of(gw.check("/api/orders/o-1")) == 429
        clock.advance(6)  # one token at 10 per minute (it took 12 s at 5)
        assert gw.status_of(gw.check("/api/orders/o-1")) == 200
        # The principal is allow-listed by a reload: never limited from the next request on.
        allowed = LIMITS + "allow:\n  principals: ['User::\"42\"']\n"
        (bundle / "protection.yaml").write_text(allowed)
        gw.store.activate(load_bundle(bundle))
        assert [gw.status_of(gw.check("/api/orders/o-1")) for _ in range(20)] == [200] * 20
        # protection.yaml removed: no protection at all.
        (bundle / "protection.yaml").unlink()
        gw.store.activate(load_bundle(bundle))
        assert [gw.status_of(gw.check("/api/orders/o-1", sub="43")) for _ in range(20)] == [
            403
        ] * 20


def test_hostile_ids_and_principals_keep_memory_small_and_never_reach_a_header(
    tmp_path: Path,
) -> None:
    clock, events = Clock(), Events()
    text = LIMITS.replace("window: 1m", "window: 1s") + BOLA.format(action="alert")
    with gateway(protected_bundle(tmp_path, text), clock, events) as gw:
        long_sub = "x" * 600
        statuses = {gw.status_of(gw.check("/api/orders/o-1", sub=long_sub)) for _ in range(7)}
        assert statuses == {403, 429}  # an unknown user: denied, then limited like anyone
        state = gw.protection.state
        assert all(len(key) < 700 for key in state.buckets)  # long ids are hashed
        weird = ["%22%5D%7D", "a%0Ab", "%E2%80%AE", "..%2F..", "%00", "' OR 1=1 --", "x" * 2000]
        for n, order in enumerate(weird * 6):  # 24 of them routable (others: bad paths)
            clock.advance(1)
            gw.check(f"/api/orders/{order}{n}", sub="77")
        fired = events.of("bola_enumeration")
        assert len(fired) == 1 and fired[0]["principal"] == 'User::"77"'
        for answer in [gw.check("/api/orders/o-1", sub="77") for _ in range(6)]:
            for key, value in headers_of(answer.denied_response.headers).items():
                assert value.isascii() and "\n" not in value, (key, value)
