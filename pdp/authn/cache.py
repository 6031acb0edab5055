"""Verified bearer tokens cached by SHA-256, so a token presented again skips verification.

An entry holds what the identity step derives from a verified token (claims, principal,
scopes), never the token: it is filed under the SHA-256 of the token's text. It is served
until the earliest of the token's expiry (`exp` + the issuer's leeway, exactly when PyJWT
would call it expired), the cache's TTL, and any change of the URL key set the token's key
came from. A token that is not valid yet by the cache's clock (`nbf` or `iat` ahead) is never
cached, and neither is a failure. One cache belongs to one compiled `JwtConfig` (one bundle):
`ActiveTokenCache` starts an empty one whenever another bundle is activated.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pdp.authn.jwks import Keyring, UrlKeySource
from pdp.authn.jwt import JwtConfig, KeyLookup, TokenHeader, VerifiedToken, peek, verify_peeked
from pdp.authn.principal import Principal, scopes

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """A verified token and what the identity step derives from it."""

    token: VerifiedToken
    principal: Principal
    scopes: tuple[str, ...]
    entities_json: str  # the principal as a Cedar JSON entity list, for requests

    @classmethod
    def of(cls, token: VerifiedToken) -> TokenIdentity:
        """Map verified claims to the principal and scopes; AuthnError when the id is unusable."""
        issuer = token.issuer
        claims = token.claims
        principal = issuer.principal.principal(claims)
        entities_json = json.dumps([principal.entity_json()])
        return cls(token, principal, scopes(claims, issuer.scopes_claim), entities_json)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One cached token: its identity, when it stops being served, the key set it relied on."""

    identity: TokenIdentity
    expires: float  # on the cache's clock: never served at or after this
    source: UrlKeySource | None  # the issuer's URL key set, None for keys from the bundle
    version: int  # `source.version` read before the token's key was looked up
    kid: str | None
    algorithm: str


class TokenCache:
    """An LRU of verified tokens for one JwtConfig, bounded by `config.cache_max_entries`.

    `keyring` must be the one the key lookup reads URL key sets from; without it, tokens of
    issuers with a JWKS URL are verified every time. `clock` is wall-clock seconds, the time
    `exp` and `nbf` are judged by (PyJWT reads the same clock when it verifies).
    """

    def __init__(
        self, config: JwtConfig, keyring: Keyring | None = None, clock: Clock = time.time
    ) -> None:
        self.config = config
        self._keyring = keyring
        self._clock = clock
        self._ttl = config.cache_ttl_seconds
        self._max = config.cache_max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str, lookup: KeyLookup) -> TokenIdentity:
        """The token's identity, from a live entry or verified now; AuthnError when refused."""
        digest = self._digest(token)
        if digest is not None:
            found = self._get(digest)
            if found is not None:
                return found
        head = peek(token, self.config)
        source = self._source(head)
        version = source.version if source is not None else 0  # before the key is read
        identity = TokenIdentity.of(verify_peeked(token, head, lookup))
        if digest is None or (source is None and head.issuer.jwks_url is not None):
            return identity  # a URL key set we cannot watch for changes: not cached
        expires = _expiry(identity.token, self._clock(), self._ttl)
        if expires is not None:
            self._put(digest, _Entry(identity, expires, source, version, head.kid, head.algorithm))
        return identity

    def cached(self, token: str) -> bool:
        """Whether `token` would be served from the cache now (no verification, no fetch)."""
        digest = self._digest(token)
        return digest is not None and self._get(digest) is not None

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def _digest(self, token: str) -> bytes | None:
        if len(token) > self.config.max_token_bytes:
            return None  # refused by peek anyway; not worth hashing
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def _source(self, head: TokenHeader) -> UrlKeySource | None:
        spec = head.issuer.jwks_url
        if spec is None or self._keyring is None:
            return None
        return self._keyring.source(spec)

    def _get(self, digest: bytes) -> TokenIdentity | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None and self._live(entry):
                self._entries.move_to_end(digest)
                self.hits += 1
                return entry.identity
            if entry is not None:
                del self._entries[digest]
            self.misses += 1
            return None

    def _live(self, entry: _Entry) -> bool:
        if self._clock() >= entry.expires:
            return False
        source = entry.source
        if source is None:
            return True
        # A changed key set, or one due for a refresh, sends the token back to verification.
        return source.version == entry.version and not source.would_fetch(
            entry.kid, entry.algorithm
        )

    def _put(self, digest: bytes, entry: _Entry) -> None:
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
                self.evictions += 1


def _expiry(token: VerifiedToken, now: float, ttl: float) -> float | None:
    """When an entry for `token` verified at `now` stops being served; None: do not cache."""
    claims = token.claims
    try:
        # PyJWT compares whole seconds: valid while now < exp + leeway, not yet while
        # nbf (or iat) > now + leeway. Never cache what is not valid without the leeway.
        if any(name in claims and int(claims[name]) > now for name in ("nbf", "iat")):
            return None
        expires = now + ttl
        if "exp" in claims:
            expires = min(expires, int(claims["exp"]) + token.issuer.leeway_seconds)
    except (TypeError, ValueError, OverflowError):
        return None
    return expires if expires > now else None


class ActiveTokenCache:
    """The token cache of the active bundle: activating another bundle starts an empty one."""

    def __init__(self, keyring: Keyring | None = None, clock: Clock = time.time) -> None:
        self._keyring = keyring
        self._clock = clock
        self._cache: TokenCache | None = None

    def activate(self, config: JwtConfig | None) -> None:
        """Use a new, empty cache for `config` (none when it turns caching off)."""
        current = self._cache
        if current is not None and current.config is config:
            return
        enabled = config is not None and config.cache_ttl_seconds > 0
        if enabled and config is not None and config.cache_max_entries > 0:
            self._cache = TokenCache(config, self._keyring, self._clock)
        else:
            self._cache = None

    def get(self, config: JwtConfig | None) -> TokenCache | None:
        """The cache for `config` if it is the active one; None for any other bundle's."""
        cache = self._cache
        return cache if cache is not None and cache.config is config else None
