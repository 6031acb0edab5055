"""JSON Web Key Sets from a bundle file or an HTTPS URL, cached and refreshed with a rate limit."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

log = logging.getLogger("pdp.authn.jwks")

# Algorithm -> (JWK key type, EC curve or None). The allowlist of what pdp verifies at all.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
    "HS256": ("oct", None),
    "HS384": ("oct", None),
    "HS512": ("oct", None),
}
HMAC_ALGORITHMS = frozenset(a for a, (kty, _) in ALGORITHMS.items() if kty == "oct")
MAX_JWKS_BYTES = 1024 * 1024
MAX_KEYS = 100
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class KeySet:
    """Verification keys by (kid, algorithm); a key without a kid is filed under ""."""

    keys: Mapping[tuple[str, str], jwt.PyJWK]

    def get(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        return self.keys.get((kid or "", algorithm))

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(kid for kid, _ in self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def parse_jwks(document: Any, algorithms: Iterable[str], weak: list[str] | None = None) -> KeySet:
    """The usable keys of a JWKS document for `algorithms`; raise ValueError when malformed.

    A key with an `alg` is bound to it (skipped when not allowed); a key without one is bound
    to every allowed algorithm of its type (and curve). Encryption keys (`use: enc`) are skipped.
    A key too weak for its algorithm (PyJWT's minimums: an HMAC secret shorter than the hash,
    32/48/64 bytes for HS256/384/512; an RSA modulus under 2048 bits) is a ValueError, or,
    when `weak` is a list, left out and described there (a fetched set keeps its good keys).
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc.msg} (line {exc.lineno})") from None
        except RecursionError:
            raise ValueError("invalid JSON: nested too deeply") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS must be a JSON object with a "keys" list')
    entries = document["keys"]
    if len(entries) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys")
    allowed = list(algorithms)
    keys: dict[tuple[str, str], jwt.PyJWK] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("kty"), str):
            raise ValueError(f"key {index}: must be an object with a kty")
        if entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid", "")
        if not isinstance(kid, str):
            raise ValueError(f"key {index}: kid must be a string")
        for algorithm in _algorithms_for(entry, allowed):
            name = f"key {index} ({kid or 'no kid'})"
            try:
                key = jwt.PyJWK(entry, algorithm=algorithm)
                too_weak = key.Algorithm.check_key_length(key.Algorithm.prepare_key(key.key))
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{name}: {exc}") from None
            if too_weak:
                problem = f"{name}: too weak for {algorithm}, refused: {too_weak}"
                if weak is None:
                    raise ValueError(problem)
                weak.append(problem)
                continue
            keys[(kid, algorithm)] = key
    return KeySet(keys)


def _algorithms_for(entry: dict[str, Any], allowed: list[str]) -> list[str]:
    """The allowed algorithms this JWK can verify."""
    declared = entry.get("alg")
    candidates = [declared] if isinstance(declared, str) else allowed
    usable = []
    for algorithm in candidates:
        if algorithm not in allowed or algorithm not in ALGORITHMS:
            continue
        kty, curve = ALGORITHMS[algorithm]
        if entry["kty"] == kty and (curve is None or entry.get("crv") == curve):
            usable.append(algorithm)
    return usable


Fetch = Callable[[str, float], Any]


def fetch_jwks(url: str, timeout: float) -> Any:
    """GET `url` as JSON; no redirects, at most 1 MiB. Every socket operation has `timeout`,
    and the body must arrive within `timeout` too (a server dripping bytes is cut off)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with opener.open(request, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        until = time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_JWKS_BYTES:
            chunk = response.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > until:
                raise OSError(f"key set took longer than {timeout:g} s to arrive")
        data = b"".join(chunks)
    if len(data) > MAX_JWKS_BYTES:
        raise OSError(f"key set is larger than {MAX_JWKS_BYTES} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("key set is nested too deeply") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Key sets are fetched from exactly the configured URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_url(url: str) -> str:
    """`url` if it is an https URL (http only to a loopback host); else ValueError."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise ValueError(f"must be an https:// URL (http only on loopback), not {url!r}")


@dataclass(frozen=True, slots=True)
class JwksUrl:
    """Where and how often to fetch one issuer's key set."""

    url: str
    algorithms: tuple[str, ...]
    cache_seconds: float = 300.0
    min_refresh_seconds: float = 30.0
    timeout_seconds: float = 2.0


class UrlKeySource:
    """One URL's key set: fetched on first use, again when the cache expires or an unknown kid
    arrives, but never more often than `min_refresh_seconds`. A failed fetch keeps the old keys.
    """

    def __init__(
        self,
        spec: JwksUrl,
        fetch: Fetch = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys = KeySet({})
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self.fetches = 0
        self.version = 0  # bumped after a fetch brings a different key set (token cache)
        self._fingerprint = ""

    def get(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key for (kid, algorithm), fetching first when due and allowed; may block for
        the fetch's timeout, but never waits behind another caller's fetch."""
        key = self._keys.get(kid, algorithm)
        if not self._due(key is not None):
            return key
        if not self._lock.acquire(blocking=False):
            return key  # a fetch is under way: the keys at hand decide
        try:
            key = self._keys.get(kid, algorithm)
            if self._due(key is not None):
                self._refresh()
                key = self._keys.get(kid, algorithm)
        finally:
            self._lock.release()
        return key

    def cached(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key for (kid, algorithm) among the keys at hand; never fetches, never blocks."""
        return self._keys.get(kid, algorithm)

    def would_fetch(self, kid: str | None, algorithm: str) -> bool:
        """Whether `get` would go to the network now (so the caller can move off its loop)."""
        return self._due(self._keys.get(kid, algorithm) is not None)

    def _due(self, known: bool) -> bool:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.spec.cache_seconds
        if known and not stale:
            return False
        allowed = (
            self._attempted_at is None or now - self._attempted_at >= self.spec.min_refresh_seconds
        )
        return allowed

    def _refresh(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        weak: list[str] = []
        try:
            document = self._fetch(self.spec.url, self.spec.timeout_seconds)
            keys = parse_jwks(document, self.spec.algorithms, weak)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.warning(
                "key set fetch failed; keeping the previous keys",
                extra={"event": "jwks_fetch_failed", "url": self.spec.url, "error": str(exc)},
            )
            return
        if weak:
            log.warning(
                "key set holds keys too weak to use; they are left out",
                extra={"event": "jwks_weak_keys", "url": self.spec.url, "keys": weak},
            )
        self._keys = keys
        self._fetched_at = self._clock()
        fingerprint = _fingerprint(document)
        if fingerprint != self._fingerprint:  # only after the swap: readers check it first
            self._fingerprint = fingerprint
            self.version += 1
        log.info(
            "key set fetched",
            extra={"event": "jwks_fetched", "url": self.spec.url, "keys": sorted(keys.kids)},
        )


def _fingerprint(document: Any) -> str:
    """A digest of a fetched key set document, to tell a changed set from a refetched one."""
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Keyring:
    """The URL key sources of a server, kept across bundle reloads (one per distinct spec)."""

    def __init__(self, fetch: Fetch = fetch_jwks, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[JwksUrl, UrlKeySource] = {}

    def source(self, spec: JwksUrl) -> UrlKeySource:
        source = self._sources.get(spec)
        if source is None:
            with self._lock:
                source = self._sources.setdefault(
                    spec, UrlKeySource(spec, self._fetch, self._clock)
                )
        return source
