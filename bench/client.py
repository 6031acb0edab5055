"""Latency with a Python grpc.aio client: a closed loop with N requests in flight over a mix."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """One closed-loop run: percentiles over calls started after the warm-up."""

    inflight: int
    count: int
    errors: int
    seconds: float
    p50_us: float
    p99_us: float
    rps: float
    cpu_us_per_call: float | None
    first_error: str = ""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(
    address: str,
    method: str,
    payloads: Sequence[bytes],
    inflight: int,
    duration: float,
    warmup: float = 0.3,
    cpu: Callable[[], float] | None = None,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> LatencyResult:
    """Send serialized `payloads` round-robin to `method`, `inflight` at a time, for `duration`."""
    return asyncio.run(
        _measure(address, method, payloads, inflight, duration, warmup, cpu, metadata)
    )


async def _measure(
    address: str,
    method: str,
    payloads: Sequence[bytes],
    inflight: int,
    duration: float,
    warmup: float,
    cpu: Callable[[], float] | None,
    metadata: Sequence[tuple[str, str]] | None,
) -> LatencyResult:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), 30)
        except TimeoutError:
            raise RuntimeError(f"no connection to {address} within 30 s") from None
        call = channel.unary_unary(method)  # bytes in, bytes out: no client-side protobuf work
        order = itertools.count()
        latencies: list[int] = []
        errors: list[str] = []
        begin = time.perf_counter_ns()
        start = begin + int(warmup * 1e9)
        end = start + int(duration * 1e9)
        marks: dict[str, float] = {}

        async def worker() -> None:
            while (now := time.perf_counter_ns()) < end:
                if now >= start and "cpu" not in marks:
                    marks["cpu"] = cpu() if cpu else 0.0
                payload = payloads[next(order) % len(payloads)]
                try:
                    await call(payload, timeout=30, metadata=metadata)
                except grpc.aio.AioRpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                done = time.perf_counter_ns()
                if now >= start:
                    latencies.append(done - now)

        await asyncio.gather(*(worker() for _ in range(inflight)))
        finished = time.perf_counter_ns()
        cpu_used = (cpu() - marks.get("cpu", 0.0)) if cpu else None
    latencies.sort()
    seconds = (finished - start) / 1e9
    count = len(latencies)
    return LatencyResult(
        inflight=inflight,
        count=count,
        errors=len(errors),
        seconds=seconds,
        p50_us=percentile(latencies, 0.50) / 1e3,
        p99_us=percentile(latencies, 0.99) / 1e3,
        rps=count / seconds if seconds > 0 else 0.0,
        cpu_us_per_call=cpu_used * 1e6 / count if cpu_used is not None and count else None,
        first_error=errors[0] if errors else "",
    )


def call_each(
    address: str,
    method: str,
    payloads: Sequence[bytes],
    metadata: Sequence[tuple[str, str]] | None = None,
) -> list[bytes | str]:
    """Send every payload once; the raw response, or the error as text (for verification)."""
    out: list[bytes | str] = []
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(method)
        for payload in payloads:
            try:
                out.append(call(payload, timeout=30, metadata=metadata))
            except grpc.RpcError as exc:
                out.append(f"{exc.code().name}: {exc.details()}")
    return out
