"""The Redis state against a real redis-server: the Lua step, replicas sharing it, fallback."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.bundle.protection import Action
from pdp.errors import StateConfigError
from pdp.protection.memory import MemoryState
from pdp.protection.outcome import Outcome
from pdp.protection.plan import BOLA, SPREAD, Bucket, Count, Step
from pdp.protection.redisstate import RedisOptions, RedisState, client_of
from tests.support.protection import START, Clock, Events, gateway, protected_bundle
from tests.support.redis import Redis, RedisUnavailable, redis_server

PRINCIPAL = 'p:User::"42"'


@pytest.fixture
def redis() -> Iterator[Redis]:
    try:
        with redis_server() as server:
            yield server
    except RedisUnavailable as exc:
        pytest.fail(f"a real redis-server is needed for these tests: {exc}")


def state(redis: Redis, prefix: str = "t:", timeout: float = 0.5) -> RedisState:
    client = client_of(RedisOptions(redis.url, timeout=timeout))
    return RedisState(client, MemoryState(), timeout=timeout, prefix=prefix)


def limited(capacity: int = 10) -> Bucket:
    return Bucket("l:shared", "shared", capacity, capacity / 60, 60.0, "read-order")


def run(state: RedisState, *steps: Step) -> list[Outcome]:
    async def go() -> list[Outcome]:
        try:
            return [await state.apply(s) for s in steps]
        finally:
            await state.close()

    return asyncio.run(go())


def test_two_replicas_share_one_bucket(redis: Redis) -> None:
    async def go() -> list[bool]:
        one, two = state(redis), state(redis)
        steps = [Step(START, (PRINCIPAL,), (limited(),), (), True, True) for _ in range(20)]
        answers = []
        for index, step in enumerate(steps):
            outcome = await (one if index % 2 else two).apply(step)
            answers.append(outcome.refusal is None)
            assert outcome.state == "redis"
        await one.close()
        await two.close()
        return answers

    answers = asyncio.run(go())
    assert answers == [True] * 10 + [False] * 10


def test_bola_counts_distinct_ids_with_hyperloglog_and_blocks_once(redis: Redis) -> None:
    action = Action("block", cooldown=600, status=403)
    steps = [
        Step(
            START + n,
            (PRINCIPAL,),
            (),
            (Count(BOLA, "c:b", 300.0, 20, f"o-{n}", n % 5 != 0, 0.5, PRINCIPAL, action, "ids"),),
            True,
            True,
        )
        for n in range(30)
    ]
    outcomes = run(state(redis), *steps)
    fired = [f for o in outcomes for f in o.fired]
    assert len(fired) == 1 and fired[0].count == 21 and fired[0].action == "block"
    assert fired[0].until == START + 20 + 600
    assert len(fired[0].samples) == 5
    refusals = [o.refusal for o in outcomes[21:]]
    assert all(r is not None and r.kind == "blocked" and r.status == 403 for r in refusals)

    async def listed() -> list[str]:
        found = state(redis)
        penalties = await found.penalties(START + 100)
        await found.close()
        return [p.subject for p in penalties]

    assert asyncio.run(listed()) == [PRINCIPAL]


def test_token_spread_counts_addresses(redis: Redis) -> None:
    action = Action("alert")
    steps = [
        Step(
            START,
            (PRINCIPAL,),
            (),
            (
                Count(
                    SPREAD, "c:t", 600.0, 5, f"10.0.0.{n}", False, 0.0, "t:ab", action, "addresses"
                ),
            ),
            True,
            True,
        )
        for n in range(8)
    ]
    fired = [f for o in run(state(redis), *steps) for f in o.fired]
    assert [(f.detector, f.count, f.action) for f in fired] == [(SPREAD, 6, "alert")]


def test_a_dead_redis_falls_back_to_the_in_process_state_and_keeps_its_blocks(
    redis: Redis,
) -> None:
    async def go() -> None:
        shared = state(redis, timeout=0.2)
        action = Action("block", cooldown=600)

        def count(member: str) -> Count:
            return Count(BOLA, "c:x", 300.0, 1, member, True, 0.5, PRINCIPAL, action, "ids")

        first = await shared.apply(Step(START, (PRINCIPAL,), (), (count("a"),), True, True))
        assert first.state == "redis" and not first.fired
        second = await shared.apply(Step(START, (PRINCIPAL,), (), (count("b"),), True, True))
        assert second.fired and second.fired[0].action == "block"
        third = await shared.apply(Step(START, (PRINCIPAL,), (), (count("c"),), True, True))
        assert third.refusal is not None and third.refusal.kind == "blocked"
        redis.kill()
        after = await shared.apply(Step(START + 1, (PRINCIPAL,), (limited(1),), (), True, True))
        assert after.state == "memory_fallback"
        assert after.refusal is not None and after.refusal.kind == "blocked"  # seen, kept
        assert shared.describe()["state"] == "memory_fallback"
        other = Step(START + 1, ('p:User::"43"',), (limited(1),), (), True, True)
        assert (await shared.apply(other)).refusal is None  # per-replica limits now
        assert (await shared.apply(other)).refusal is not None
        assert [p.subject for p in await shared.penalties(START + 1)] == [PRINCIPAL]
        await shared.close()

    asyncio.run(go())


def test_a_slow_redis_is_waited_for_at_most_the_timeout(redis: Redis) -> None:
    async def go() -> None:
        shared = state(redis, timeout=0.05)
        redis.process.send_signal(signal.SIGSTOP)  # alive, but never answers
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            outcome = await shared.apply(Step(START, (PRINCIPAL,), (limited(),), (), True, True))
            waited = loop.time() - started
            assert outcome.state == "memory_fallback"
            assert waited < 5  # bounded (the timeout is 50 ms; generous for a busy machine)
        finally:
            redis.process.send_signal(signal.SIGCONT)
        await shared.close()

    asyncio.run(go())


def test_state_options_are_checked() -> None:
    with pytest.raises(StateConfigError, match="redis://"):
        client_of(RedisOptions("http://localhost:6379"))
    with pytest.raises(StateConfigError, match="rediss://"):
        client_of(RedisOptions("redis://localhost:6379", ca_file="/etc/ssl/ca.pem"))


def test_check_with_redis_and_a_password(tmp_path: Path) -> None:
    try:
        server = redis_server(password="s3cret-pass")
        running = server.__enter__()
    except RedisUnavailable as exc:
        pytest.fail(f"a real redis-server is needed for these tests: {exc}")
    try:
        text = "limits:\n  - {name: per-user, key: principal, limit: 3, window: 1m}\n"
        client = client_of(RedisOptions(running.url, password="s3cret-pass", timeout=0.5))
        shared = RedisState(client, MemoryState(), timeout=0.5)
        clock, events = Clock(), Events()
        with gateway(protected_bundle(tmp_path, text), clock, events, shared) as gw:
            statuses = [gw.status_of(gw.check("/api/orders/o-1")) for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            assert shared.describe()["state"] == "redis" and shared.fallbacks == 0
    finally:
        server.__exit__(None, None, None)
