"""pdp/cli/protection_flags.py: the runtime the --state flags build, and where it reports."""

from __future__ import annotations

import asyncio

from pdp.cli.main import build_parser
from pdp.cli.protection_flags import protection_from_args
from pdp.metrics import PrometheusMetrics
from pdp.protection.plan import Step
from pdp.protection.redisstate import RedisState
from tests.support.daemon import free_port
from tests.support.paths import EXAMPLE_BUNDLE


def test_a_redis_state_that_does_not_answer_sets_the_fallback_gauge_of_the_metrics() -> None:
    port = free_port()  # nothing listens there: the connection is refused at once
    args = build_parser().parse_args(
        ["serve", str(EXAMPLE_BUNDLE), "--state", f"redis://127.0.0.1:{port}/0"]
    )
    metrics = PrometheusMetrics()
    protection = protection_from_args(args, None, metrics)
    state = protection.state
    assert isinstance(state, RedisState)
    assert metrics.registry.get_sample_value("pdp_protection_state_fallback") == 0

    async def go() -> str:
        try:
            return (await state.apply(Step(1.0, (), (), (), True, True))).state
        finally:
            await state.close()

    assert asyncio.run(go()) == "memory_fallback"
    assert metrics.registry.get_sample_value("pdp_protection_state_fallback") == 1


def test_the_memory_state_needs_no_metrics() -> None:
    args = build_parser().parse_args(["serve", str(EXAMPLE_BUNDLE)])
    protection = protection_from_args(args, None, None)
    assert protection.state.name == "memory"
