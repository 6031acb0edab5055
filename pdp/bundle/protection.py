"""protection.yaml, parsed and checked at bundle load into one immutable ProtectionConfig."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from pdp.errors import Problem, YamlError
from pdp.model import EntityRef
from pdp.yamlsrc import Reader, Section, load

PROTECTION = "protection.yaml"
MODES = ("enforce", "observe")
KEYS = ("principal", "route", "principal+route", "address", "token")
ACTIONS = ("alert", "throttle", "block")
SPREAD_BY = ("token", "principal")
BLOCK_STATUSES = (429, 403)
MAX_LIMITS = 64
MAX_ALLOWED = 1000
MAX_WINDOW_SECONDS = 7 * 86400.0
MAX_DISTINCT = 10_000  # a distinct-count threshold: the in-process sets hold at most this + 1
MAX_COUNT = 1_000_000_000
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket per key: `limit` per `window` seconds refills it, `burst` is its size."""

    name: str
    key: str  # one of KEYS
    limit: int
    window: float
    burst: int
    routes: frozenset[str] | None = None  # None: every route
    principal_types: frozenset[str] | None = None
    roles: frozenset[str] | None = None

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.limit / self.window


@dataclass(frozen=True, slots=True)
class Action:
    """What a detector does when it fires: alert, throttle (a tighter limit) or block."""

    kind: str  # one of ACTIONS
    cooldown: float = 300.0  # how long a block or throttle lasts
    status: int = 429  # a block's answer
    throttle_limit: int = 1  # a throttle's limit per throttle_window
    throttle_window: float = 60.0


@dataclass(frozen=True, slots=True)
class Bola:
    """One principal touching more than `distinct_ids` ids of one type on one route within
    `window`, at least `denied_fraction` of those requests denied."""

    window: float
    distinct_ids: int
    denied_fraction: float
    action: Action
    routes: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class AuthFailures:
    """More than `unauthenticated` 401s from one address, or `forbidden` 403s for one principal,
    within `window` (0: that half is off)."""

    window: float
    unauthenticated: int
    forbidden: int
    action: Action


@dataclass(frozen=True, slots=True)
class TokenSpread:
    """One token (by hash) or principal seen from more than `addresses` addresses in `window`."""

    window: float
    addresses: int
    by: frozenset[str]  # "token", "principal"
    action: Action


@dataclass(frozen=True, slots=True)
class ProtectionConfig:
    """protection.yaml: rate limits, detectors, allow-lists and the mode."""

    mode: str = "enforce"
    role_claim: str = "roles"
    allow_principals: frozenset[str] = frozenset()  # principal uids as `Type::"id"` text
    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    limits: tuple[Limit, ...] = ()
    bola: Bola | None = None
    auth_failures: AuthFailures | None = None
    token_spread: TokenSpread | None = None

    @property
    def observe(self) -> bool:
        return self.mode == "observe"

    def allowed_address(self, address: str) -> bool:
        if not self.allow_networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.allow_networks)


def compile_protection(
    text: str, path: str, routes: frozenset[str] | None, problems: list[Problem]
) -> ProtectionConfig | None:
    """Parse protection.yaml `text`; `routes` are the route names routes.yaml defines (None:
    there is no routes.yaml, which protection needs). Problems go to `problems` as `path:LINE`."""
    start = len(problems)
    try:
        document = load(path, text)
    except YamlError as exc:
        problems.extend(exc.problems)
        return None
    top = Reader(path, problems).section(document, "", 1)
    if not top.ok:
        return None
    if routes is None:
        top.error(f"{PROTECTION} needs routes.yaml: it protects the gateway's routes")
    top.only("mode", "role_claim", "allow", "limits", "detectors")
    mode = top.string("mode", "enforce") or "enforce"
    if mode not in MODES:
        top.error(f"mode must be one of {', '.join(MODES)}, not {mode!r}", "mode")
    allow = top.child("allow")
    allow.only("principals", "addresses")
    principals = frozenset(_principal(allow, text) for text in allow.strings("principals"))
    networks = tuple(_network(allow, text) for text in allow.strings("addresses"))
    if len(principals) + len(networks) > MAX_ALLOWED:
        allow.error(f"allow lists at most {MAX_ALLOWED} entries")
    limits = _limits(top, routes or frozenset())
    detectors = top.child("detectors")
    detectors.only("bola_enumeration", "auth_failures", "token_spread")
    config = ProtectionConfig(
        mode=mode,
        role_claim=top.string("role_claim", "roles") or "roles",
        allow_principals=frozenset(p for p in principals if p),
        allow_networks=tuple(n for n in networks if n is not None),
        limits=limits,
        bola=_bola(detectors, routes or frozenset()) if detectors.has("bola_enumeration") else None,
        auth_failures=_auth(detectors) if detectors.has("auth_failures") else None,
        token_spread=_spread(detectors) if detectors.has("token_spread") else None,
    )
    return None if len(problems) > start else config


def duration(value: Any) -> float:
    """Seconds from a number or text like `90`, `500ms`, `30s`, `5m`, `1h`, `1d`."""
    if isinstance(value, bool):
        raise ValueError("must be a duration (seconds, or like 30s, 5m, 1h)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if match is None:
            raise ValueError(f"must be a duration (seconds, or like 30s, 5m, 1h), not {value!r}")
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not 0.001 <= seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(f"must be between 1ms and {int(MAX_WINDOW_SECONDS)}s")
    return seconds


def _principal(node: Section, text: str) -> str:
    try:
        return str(EntityRef.parse(text))
    except ValueError as exc:
        node.error(f'allow.principals: {text!r} is not an entity uid like User::"42": {exc}')
        return ""


def _network(node: Section, text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        node.error(f"allow.addresses: {text!r} is not an IP address or CIDR block")
        return None


def _count(node: Section, key: str, default: int, minimum: int, maximum: int) -> int:
    value = node.node.get(key)
    if value is None:
        if default < 0:
            node.error(f"{node.where}.{key} is required")
        return max(default, minimum)
    if isinstance(value, bool) or not isinstance(value, int):
        node.error(f"{node.where}.{key} must be a whole number", key)
        return max(default, minimum)
    if not minimum <= value <= maximum:
        node.error(f"{node.where}.{key} must be between {minimum} and {maximum}", key)
        return max(default, minimum)
    return value


def _window(node: Section, key: str = "window", default: float | None = None) -> float:
    value = node.parsed(key, duration, required=default is None)
    return value if value is not None else (default or 60.0)


def _names(node: Section, key: str, known: frozenset[str] | None = None) -> frozenset[str] | None:
    if not node.has(key):
        return None
    names = node.strings(key, required=True)
    for name in names:
        if known is not None and name not in known:
            node.error(f"{node.where}.{key}: no route named {name!r} in routes.yaml", key)
    return frozenset(names)


def _limits(top: Section, routes: frozenset[str]) -> tuple[Limit, ...]:
    items = top.items("limits")
    if len(items) > MAX_LIMITS:
        top.error(f"limits: at most {MAX_LIMITS}", "limits")
        return ()
    found: list[Limit] = []
    seen: set[str] = set()
    for index, (item, line) in enumerate(items):
        node = top.section(item, f"limits[{index}]", line)
        if not node.ok:
            continue
        node.only("name", "key", "limit", "window", "burst", "routes", "principal_types", "roles")
        name = node.string("name", required=True) or ""
        if name and not _NAME.match(name):
            node.error(f"{node.where}.name must be 1-64 of A-Z a-z 0-9 _ . -", "name")
        if name in seen:
            node.error(f"{node.where}.name: {name!r} is used by an earlier limit", "name")
        seen.add(name)
        key = node.string("key", required=True) or "principal"
        if key not in KEYS:
            node.error(f"{node.where}.key must be one of {', '.join(KEYS)}, not {key!r}", "key")
        limit = _count(node, "limit", -1, 1, MAX_COUNT)
        found.append(
            Limit(
                name=name,
                key=key,
                limit=limit,
                window=_window(node),
                burst=_count(node, "burst", limit, 1, MAX_COUNT),
                routes=_names(node, "routes", routes),
                principal_types=_names(node, "principal_types"),
                roles=_names(node, "roles"),
            )
        )
    return tuple(found)


def _action(node: Section) -> Action:
    kind = node.string("action", "alert") or "alert"
    if kind not in ACTIONS:
        node.error(f"{node.where}.action must be one of {', '.join(ACTIONS)}, not {kind!r}")
    status = _count(node, "status", 429, 0, 999)
    if status not in BLOCK_STATUSES:
        node.error(f"{node.where}.status must be 429 or 403", "status")
    throttle = node.child("throttle")
    throttle.only("limit", "window")
    if kind == "throttle" and not node.has("throttle"):
        node.error(f"{node.where}: action throttle needs throttle: {{limit, window}}")
    return Action(
        kind=kind,
        cooldown=_window(node, "cooldown", 300.0),
        status=status,
        throttle_limit=_count(throttle, "limit", 1, 1, MAX_COUNT),
        throttle_window=_window(throttle, "window", 60.0),
    )


ACTION_KEYS = ("window", "action", "cooldown", "status", "throttle")


def _bola(detectors: Section, routes: frozenset[str]) -> Bola:
    node = detectors.child("bola_enumeration")
    node.only(*ACTION_KEYS, "distinct_ids", "denied_fraction", "routes")
    return Bola(
        window=_window(node),
        distinct_ids=_count(node, "distinct_ids", -1, 1, MAX_DISTINCT),
        denied_fraction=node.number("denied_fraction", 0.5, 0.0, 1.0),
        action=_action(node),
        routes=_names(node, "routes", routes),
    )


def _auth(detectors: Section) -> AuthFailures:
    node = detectors.child("auth_failures")
    node.only(*ACTION_KEYS, "unauthenticated", "forbidden")
    detector = AuthFailures(
        window=_window(node),
        unauthenticated=_count(node, "unauthenticated", 0, 0, MAX_COUNT),
        forbidden=_count(node, "forbidden", 0, 0, MAX_COUNT),
        action=_action(node),
    )
    if not detector.unauthenticated and not detector.forbidden:
        node.error(f"{node.where} needs unauthenticated or forbidden (a count above zero)")
    return detector


def _spread(detectors: Section) -> TokenSpread:
    node = detectors.child("token_spread")
    node.only(*ACTION_KEYS, "addresses", "by")
    by = node.strings("by") or ["token"]
    for item in by:
        if item not in SPREAD_BY:
            node.error(f"{node.where}.by: {item!r} is not one of {', '.join(SPREAD_BY)}", "by")
    return TokenSpread(
        window=_window(node),
        addresses=_count(node, "addresses", -1, 1, MAX_DISTINCT),
        by=frozenset(by),
        action=_action(node),
    )
