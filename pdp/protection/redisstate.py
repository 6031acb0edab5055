"""Protection state in Redis, shared by a fleet: one Lua script call per request, bounded wait,
and the in-process state as the documented fallback while Redis cannot answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdp.errors import StateConfigError
from pdp.protection.memory import MemoryState
from pdp.protection.outcome import Fired, Outcome, Penalty, Refusal
from pdp.protection.plan import Step

log = logging.getLogger("pdp.protection")

DEFAULT_TIMEOUT = 0.05  # seconds one request waits for Redis before the fallback answers
RETRY_SECONDS = 1.0  # while falling back, Redis is tried again at most this often
MAX_LISTED = 1000  # active penalties listed by GetStatus
PREFIX = "pdp:prot:"
SCRIPT = (Path(__file__).parent / "step.lua").read_text()


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """`--state redis://...` and its TLS and auth options (never the password in argv)."""

    url: str
    password: str | None = None
    ca_file: str | None = None  # rediss://: verify the server with these CAs
    cert_file: str | None = None  # rediss://: a client certificate (mTLS)
    key_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    prefix: str = PREFIX


def client_of(options: RedisOptions) -> Any:
    """A redis.asyncio client for the options; StateConfigError when the URL is not one."""
    import redis.asyncio as aioredis

    if not options.url.startswith(("redis://", "rediss://")):
        raise StateConfigError("--state: a redis:// or rediss:// URL, or 'memory'")
    extra: dict[str, Any] = {}
    if options.url.startswith("rediss://"):
        extra.update(ssl_ca_certs=options.ca_file, ssl_cert_reqs="required")
        if options.cert_file is not None:
            extra.update(ssl_certfile=options.cert_file, ssl_keyfile=options.key_file)
    elif options.ca_file or options.cert_file:
        raise StateConfigError("--state-ca and --state-cert need a rediss:// URL (TLS)")
    if options.password is not None:
        extra["password"] = options.password
    try:
        return aioredis.Redis.from_url(
            options.url,
            socket_timeout=options.timeout,
            socket_connect_timeout=options.timeout,
            retry_on_timeout=False,
            health_check_interval=0,
            **extra,
        )
    except ValueError as exc:
        raise StateConfigError(f"--state: {exc}") from None


class RedisState:
    """Buckets, counters and penalties in Redis; the in-process `fallback` answers (and is told
    of every penalty Redis reports) whenever Redis fails or is slower than the timeout."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        fallback: MemoryState | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        prefix: str = PREFIX,
        monotonic: Callable[[], float] = time.monotonic,
        on_fallback: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.fallback = fallback or MemoryState()
        self.timeout = timeout
        self.prefix = prefix
        self._monotonic = monotonic
        self._script = client.register_script(SCRIPT)
        self.falling_back = False
        self.fallbacks = 0  # times Redis failed and the fallback answered
        self.last_error = ""
        self._retry_at = 0.0
        self._on_fallback = on_fallback

    async def apply(self, step: Step) -> Outcome:
        if self.falling_back and self._monotonic() < self._retry_at:
            return self._fallback(step)
        try:
            async with asyncio.timeout(self.timeout):  # no extra task, unlike wait_for
                answer = await self._script(args=[encode(step), self.prefix])
        except Exception as exc:  # down, slow, refused, a script error: the fallback decides
            self._failed(exc)
            return self._fallback(step)
        if self.falling_back:
            self.falling_back = False
            log.warning(
                "protection state: Redis answers again; limits are fleet-wide again",
                extra={"event": "protection_state_recovered"},
            )
            if self._on_fallback is not None:
                self._on_fallback(False)
        outcome = decode(answer, step)
        for penalty in penalties_in(answer):
            self.fallback.punish(penalty)  # kept locally: enforced if Redis goes away
        return outcome

    def _fallback(self, step: Step) -> Outcome:
        outcome = self.fallback.apply_now(step)
        return Outcome(outcome.refusal, outcome.fired, "memory_fallback")

    def _failed(self, exc: BaseException) -> None:
        self.fallbacks += 1
        self._retry_at = self._monotonic() + RETRY_SECONDS
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.falling_back:
            return
        self.falling_back = True
        log.error(
            "protection state: Redis does not answer; each replica now enforces its own "
            "in-process limits (the fleet-wide limit becomes per replica) and the blocks it "
            "has seen, until Redis answers again",
            extra={"event": "protection_state_fallback", "error": self.last_error},
        )
        if self._on_fallback is not None:
            self._on_fallback(True)

    async def penalties(self, now: float) -> list[Penalty]:
        """Active penalties: Redis's when it answers, else the ones this replica has seen."""
        key = self.prefix + "penalties"
        try:
            async with asyncio.timeout(max(self.timeout, 1.0)):
                await self.client.zremrangebyscore(key, "-inf", now)
                subjects = await self.client.zrange(key, 0, MAX_LISTED - 1)
                found = []
                for raw in subjects:
                    subject = raw.decode() if isinstance(raw, bytes) else str(raw)
                    fields = await self.client.hgetall(self.prefix + "pen:" + subject)
                    penalty = _penalty(subject, fields)
                    if penalty is not None and penalty.until > now:
                        found.append(penalty)
                return sorted(found, key=lambda p: p.until)
        except Exception as exc:
            self._failed(exc)
            return self.fallback.active(now)

    def describe(self) -> dict[str, object]:
        return {
            "state": "memory_fallback" if self.falling_back else "redis",
            "fallbacks": self.fallbacks,
            "last_error": self.last_error,
        }

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a connection to a dead server
            await self.client.aclose()


def encode(step: Step) -> str:
    """The step as the script's JSON argument."""
    return json.dumps(
        {
            "now": step.now,
            "enforce": int(step.enforce),
            "admission": int(step.admission),
            "subjects": list(step.subjects),
            "buckets": [
                [b.key, b.name, b.capacity, b.rate, b.window, b.route or False]
                for b in step.buckets
            ],
            "counts": [
                [
                    c.detector,
                    c.key,
                    c.window,
                    c.threshold,
                    c.member if c.member is not None else False,
                    int(c.denied),
                    c.fraction,
                    c.subject,
                    c.action.kind,
                    c.action.cooldown,
                    c.action.status,
                    c.action.throttle_limit,
                    c.action.throttle_window,
                    c.what,
                ]
                for c in step.counts
            ],
        },
        separators=(",", ":"),
    )


def decode(answer: Any, step: Step) -> Outcome:
    data = json.loads(answer)
    refusal = None
    raw = data.get("refusal")
    if isinstance(raw, list) and raw:
        kind, name, status, retry, limit, window, route = raw
        refusal = Refusal(
            str(kind),
            str(name),
            int(status),
            float(retry),
            int(limit),
            float(window),
            route if isinstance(route, str) else None,
        )
    fired = []
    for item in data.get("fired") or []:
        detector, what, subject, action, count, total, denied, samples, until = item[:9]
        fired.append(
            Fired(
                str(detector),
                str(what),
                str(subject),
                str(action),
                int(count),
                int(total),
                int(denied),
                tuple(str(s) for s in (samples or [])),
                float(until) if until not in (False, None) else None,
            )
        )
    return Outcome(refusal, tuple(fired), "redis")


def penalties_in(answer: Any) -> list[Penalty]:
    """The penalties the script saw or set, to enforce locally should Redis go away."""
    data = json.loads(answer)
    found = []
    for item in data.get("seen") or []:
        subject, action, detector, until, status, limit, window = item
        found.append(
            Penalty(
                str(subject),
                str(action),
                str(detector),
                float(until),
                int(status),
                int(limit),
                float(window),
            )
        )
    for item in data.get("fired") or []:
        if item[8] not in (False, None):
            found.append(
                Penalty(
                    str(item[2]),
                    str(item[3]),
                    str(item[0]),
                    float(item[8]),
                    int(item[9]),
                    int(item[10]),
                    float(item[11]),
                )
            )
    return found


def _penalty(subject: str, fields: dict[Any, Any]) -> Penalty | None:
    values = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    try:
        return Penalty(
            subject,
            values["action"],
            values["detector"],
            float(values["until"]),
            int(values.get("status", 429)),
            int(values.get("limit", 1)),
            float(values.get("window", 60)),
        )
    except (KeyError, ValueError):
        return None
