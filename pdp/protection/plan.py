"""What protection does for one gateway answer: the subjects, buckets and detector counts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pdp.bundle.protection import Action, Limit, ProtectionConfig
from pdp.gateway.result import CheckResult, GatewayRequest

BOLA, AUTH, SPREAD, RATE_LIMIT = "bola_enumeration", "auth_failures", "token_spread", "rate_limit"
# Reasons of an answer that went through identity and route matching (a policy decision).
ROUTED_REASONS = frozenset({"", "policy", "principal_type", "invalid_request"})
MAX_SUBJECT_CHARS = 512  # a subject (principal uid, address) longer than this is hashed


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket to take a token from: its key, size and refill rate (tokens/s)."""

    key: str
    name: str  # the limit's name (RateLimit-Policy)
    capacity: int
    rate: float
    window: float
    route: str | None


@dataclass(frozen=True, slots=True)
class Count:
    """One detector counter to record into: a plain count, or distinct members, per window."""

    detector: str
    key: str
    window: float
    threshold: int  # fire when the count (or distinct count) exceeds it
    member: str | None  # a distinct member (a resource id, an address); None: count requests
    denied: bool  # this request was denied (BOLA's fraction)
    fraction: float  # BOLA: the least fraction of denied requests to fire
    subject: str  # the penalty key set when it fires with throttle or block
    action: Action
    what: str  # "unauthenticated", "forbidden", "ids", "addresses": for the event


@dataclass(frozen=True, slots=True)
class Step:
    """Everything one request asks of the state, answered in one atomic step."""

    now: float
    subjects: tuple[str, ...]  # penalty keys to check (blocks, throttles)
    buckets: tuple[Bucket, ...]
    counts: tuple[Count, ...]  # recorded only when the request is admitted
    enforce: bool  # False (mode: observe): nothing is refused and nothing is blocked
    admission: bool  # False: a 401 or unknown route, only counted (it is denied anyway)


def plan(
    config: ProtectionConfig,
    result: CheckResult,
    request: GatewayRequest,
    api_key_header: str | None,
    now: float,
) -> Step | None:
    """The step for one answer, None when protection has nothing to do with it (an
    allow-listed principal or address, an answer without a bundle or route)."""
    principal = str(result.principal) if result.principal is not None else None
    address = result.source_address
    if principal is not None and principal in config.allow_principals:
        return None
    if config.allowed_address(address):
        return None
    token = token_hash(request.headers, result.identity_kind, api_key_header)
    enforce = not config.observe
    routed = (
        principal is not None
        and not result.unknown_route
        and result.authn_failure is None
        and result.reason in ROUTED_REASONS
    )
    counts = _counts(config, result, principal, address, token, routed)
    if not routed:
        return Step(now, (), (), counts, enforce, False) if counts else None
    assert principal is not None
    subjects = [subject("p", principal)]
    if address:
        subjects.append(subject("a", address))
    if token is not None:
        subjects.append(subject("t", token))
    buckets = tuple(
        bucket
        for limit in config.limits
        if _applies(limit, result, config.role_claim)
        and (bucket := _bucket(limit, result, principal, address, token)) is not None
    )
    return Step(now, tuple(subjects), buckets, counts, enforce, True)


def subject(kind: str, value: str) -> str:
    """A penalty key: `p:` principal, `a:` address, `t:` token hash; long values hashed."""
    if len(value) > MAX_SUBJECT_CHARS:
        value = "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{kind}:{value}"


def _bounded(value: str) -> str:
    """`value`, or its SHA-256 when long: distinct long ids stay distinct, and small."""
    if len(value) <= MAX_SUBJECT_CHARS:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def token_hash(
    headers: Mapping[str, tuple[str, ...]], kind: str, api_key_header: str | None
) -> str | None:
    """The SHA-256 (32 hex digits) of the credential a request was identified by, never the
    credential itself; None for mTLS or no credential."""
    if kind == "jwt":
        values = headers.get("authorization", ())
    elif kind == "api_key" and api_key_header is not None:
        values = headers.get(api_key_header, ())
    else:
        return None
    if len(values) != 1:
        return None
    data = values[0].strip().encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()[:32]


def _applies(limit: Limit, result: CheckResult, role_claim: str) -> bool:
    if limit.routes is not None and result.route not in limit.routes:
        return False
    principal = result.principal
    if limit.principal_types is not None and (
        principal is None or principal.type not in limit.principal_types
    ):
        return False
    return limit.roles is None or bool(limit.roles & roles_of(result.claims, role_claim))


def roles_of(claims: Mapping[str, Any] | None, claim: str) -> frozenset[str]:
    """The roles a token's `claim` lists (a string, or a list of strings)."""
    value = claims.get(claim) if claims else None
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _bucket(
    limit: Limit, result: CheckResult, principal: str, address: str, token: str | None
) -> Bucket | None:
    route = result.route or ""
    parts = {
        "principal": (principal,),
        "route": (route,),
        "principal+route": (principal, route),
        "address": (address,),
        "token": (token,),
    }[limit.key]
    if any(not part for part in parts):
        return None  # no token, no address: this limit has no key for the request
    key = subject("l", f"{limit.name}|" + "|".join(p for p in parts if p))
    return Bucket(key, limit.name, limit.burst, limit.rate, limit.window, result.route)


def _counts(
    config: ProtectionConfig,
    result: CheckResult,
    principal: str | None,
    address: str,
    token: str | None,
    routed: bool,
) -> tuple[Count, ...]:
    counts: list[Count] = []
    auth = config.auth_failures
    if auth is not None:
        if auth.unauthenticated and result.http_status == 401 and address:
            key = subject("c", f"{AUTH}|401|{address}")
            what = "unauthenticated"
            counts.append(
                Count(
                    AUTH,
                    key,
                    auth.window,
                    auth.unauthenticated,
                    None,
                    True,
                    0.0,
                    subject("a", address),
                    auth.action,
                    what,
                )
            )
        if auth.forbidden and result.http_status == 403 and principal is not None and routed:
            key = subject("c", f"{AUTH}|403|{principal}")
            counts.append(
                Count(
                    AUTH,
                    key,
                    auth.window,
                    auth.forbidden,
                    None,
                    True,
                    0.0,
                    subject("p", principal),
                    auth.action,
                    "forbidden",
                )
            )
    if not routed:
        return tuple(counts)
    assert principal is not None
    bola = config.bola
    request = result.request
    if (
        bola is not None
        and request is not None
        and (bola.routes is None or result.route in bola.routes)
    ):
        resource = request.resource
        key = subject("c", f"{BOLA}|{principal}|{result.route or ''}|{resource.type}")
        counts.append(
            Count(
                BOLA,
                key,
                bola.window,
                bola.distinct_ids,
                _bounded(resource.id),
                not result.allowed,
                bola.denied_fraction,
                subject("p", principal),
                bola.action,
                "ids",
            )
        )
    spread = config.token_spread
    if spread is not None and address:
        if "token" in spread.by and token is not None:
            counts.append(
                Count(
                    SPREAD,
                    subject("c", f"{SPREAD}|t|{token}"),
                    spread.window,
                    spread.addresses,
                    address,
                    False,
                    0.0,
                    subject("t", token),
                    spread.action,
                    "addresses",
                )
            )
        if "principal" in spread.by:
            counts.append(
                Count(
                    SPREAD,
                    subject("c", f"{SPREAD}|p|{principal}"),
                    spread.window,
                    spread.addresses,
                    address,
                    False,
                    0.0,
                    subject("p", principal),
                    spread.action,
                    "addresses",
                )
            )
    return tuple(counts)
