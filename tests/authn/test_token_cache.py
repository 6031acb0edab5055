"""The token cache: real ES256 tokens, real keys, PyJWT verification, a loopback JWKS server.

Whether a token was served from the cache is observed through the key lookup: verification
asks it for the token's key exactly once, a cache hit never does. Clocks are injected (the
cache's wall clock, the key sets' monotonic clock), so no test here waits for time to pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import jwt as pyjwt
import pytest

from pdp.authn.cache import ActiveTokenCache, TokenCache
from pdp.authn.identity import identify, read_credentials
from pdp.authn.jwks import JwksUrl, Keyring
from pdp.authn.jwt import JwtConfig
from pdp.bundle import load_bundle
from pdp.errors import AuthnError
from pdp.model import EntityRef
from tests.support.gateway import ISSUER, JwksServer, bearer, ec_key, public_jwk, token
from tests.support.lookup import CountingLookup

BUNDLE = load_bundle("policies")
IDENTITY = BUNDLE.gateway.identity  # type: ignore[union-attr]
JWT = IDENTITY.jwt
assert JWT is not None
LEEWAY = JWT.issuers[ISSUER].leeway_seconds  # 30 s in the example bundle
OLD, NEW = ec_key(), ec_key()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(base: JwtConfig = JWT, leeway: float | None = None, **settings: float) -> JwtConfig:
    """`base` with other cache settings (cache_ttl_seconds, cache_max_entries) or leeway."""
    if leeway is not None:
        issuers = {name: replace(i, leeway_seconds=leeway) for name, i in base.issuers.items()}
        base = replace(base, issuers=issuers)
    return replace(base, **settings)


def reason(call: Callable[..., object], *args: object) -> str:
    """The reason `call(*args)` is refused with (it must be)."""
    with pytest.raises(AuthnError) as info:
        call(*args)
    return info.value.reason


def test_a_cached_token_skips_verification_and_keeps_what_identity_derived() -> None:
    cache = TokenCache(JWT, clock=Clock(time.time()))
    lookup = CountingLookup()
    value = token("42", roles=["admin"], scope="orders:read", tenant="acme")
    first = cache.verify(value, lookup)
    again = cache.verify(value, lookup)
    assert lookup.calls == 1
    assert again is first
    assert first.principal.uid == EntityRef("User", "42")
    assert first.principal.parents == (EntityRef("Role", "admin"),)
    assert first.scopes == ("orders:read",)
    assert json.loads(first.entities_json) == [first.principal.entity_json()]
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
    # Filed under the token's SHA-256, never under the token itself.
    assert list(cache._entries) == [hashlib.sha256(value.encode()).digest()]


def test_an_entry_is_never_served_from_exp_plus_leeway_on() -> None:
    start = time.time()
    expires = int(start) + 120
    clock = Clock(start)
    cache = TokenCache(config(cache_ttl_seconds=3600), clock=clock)
    lookup = CountingLookup()
    value = token("42", exp=expires)
    cache.verify(value, lookup)
    clock.now = expires + LEEWAY - 0.001  # still valid for PyJWT: exp > now - leeway
    cache.verify(value, lookup)
    assert lookup.calls == 1
    clock.now = expires + LEEWAY  # expired for PyJWT from here: exp <= now - leeway
    cache.verify(value, lookup)  # verified again (the real clock has not moved that far)
    assert lookup.calls == 2
    cache.verify(value, lookup)  # and not cached again: past its expiry by the cache's clock
    assert lookup.calls == 3


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock(time.time())
    cache = TokenCache(config(cache_ttl_seconds=60), clock=clock)
    lookup = CountingLookup()
    value = token("42")  # valid for 300 s: the TTL ends first
    cache.verify(value, lookup)
    clock.now += 59.9
    cache.verify(value, lookup)
    assert lookup.calls == 1
    clock.now += 0.1
    cache.verify(value, lookup)
    assert lookup.calls == 2


def test_the_least_recently_used_entry_is_evicted() -> None:
    cache = TokenCache(config(cache_max_entries=2), clock=Clock(time.time()))
    lookup = CountingLookup()
    a, b, c = token("a"), token("b"), token("c")
    cache.verify(a, lookup)
    cache.verify(b, lookup)
    cache.verify(a, lookup)  # a is now the most recently used
    cache.verify(c, lookup)  # evicts b
    assert (lookup.calls, len(cache), cache.evictions) == (3, 2, 1)
    cache.verify(a, lookup)
    cache.verify(c, lookup)
    assert lookup.calls == 3
    cache.verify(b, lookup)
    assert lookup.calls == 4 and len(cache) == 2


def _segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_token_sharing_a_prefix_with_a_cached_one_is_not_served() -> None:
    cache = TokenCache(JWT, clock=Clock(time.time()))
    lookup = CountingLookup()
    value = token("42")
    cache.verify(value, lookup)
    header, payload, signature = value.split(".")
    claims = pyjwt.decode(value, options={"verify_signature": False})
    forged_claims = f"{header}.{_segment({**claims, 'sub': '43'})}.{signature}"
    flipped = "A" if signature[-2] != "A" else "B"
    forged_signature = f"{header}.{payload}.{signature[:-2]}{flipped}{signature[-1]}"
    assert reason(cache.verify, forged_claims, lookup) == "bad_signature"
    assert reason(cache.verify, forged_signature, lookup) == "bad_signature"
    for longer_or_shorter in (value + "A", value[:-1]):
        assert reason(cache.verify, longer_or_shorter, lookup) in REFUSED_SIGNATURES
    assert len(cache) == 1
    assert cache.verify(value, lookup).principal.uid == EntityRef("User", "42")


REFUSED_SIGNATURES = ("bad_signature", "malformed")


def test_failures_are_not_cached() -> None:
    cache = TokenCache(JWT, clock=Clock(time.time()))
    lookup = CountingLookup()
    stranger = token("42", key=OLD)  # the right kid, another key
    assert reason(cache.verify, stranger, lookup) == "bad_signature"
    assert reason(cache.verify, stranger, lookup) == "bad_signature"
    no_subject = token("", roles=["admin"])  # verifies, but maps to no principal
    assert reason(cache.verify, no_subject, lookup) == "missing_claim"
    assert reason(cache.verify, no_subject, lookup) == "missing_claim"
    assert lookup.calls == 4 and len(cache) == 0


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_not_yet_valid_is_never_cached(claim: str) -> None:
    start = time.time()
    clock = Clock(start)
    cache = TokenCache(JWT, clock=clock)
    lookup = CountingLookup()
    value = token("42", **{claim: int(start) + 10})  # accepted: within the 30 s leeway
    cache.verify(value, lookup)
    cache.verify(value, lookup)
    assert lookup.calls == 2 and len(cache) == 0
    clock.now = start + 11  # valid without the leeway now: cached from here on
    cache.verify(value, lookup)
    cache.verify(value, lookup)
    assert lookup.calls == 3 and len(cache) == 1


def test_an_oversized_token_is_refused_before_hashing() -> None:
    cache = TokenCache(JWT)
    huge = "x" * (JWT.max_token_bytes + 1)
    assert reason(cache.verify, huge, CountingLookup()) == "too_large"
    assert len(cache) == 0


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


def url_config(url: str, cache_seconds: float = 300.0) -> JwtConfig:
    """The example issuer with its keys at `url` instead of in the bundle."""
    spec = JwksUrl(url, ("ES256",), cache_seconds=cache_seconds, min_refresh_seconds=30)
    issuer = replace(JWT.issuers[ISSUER], keys=None, jwks_url=spec)
    return replace(JWT, issuers={ISSUER: issuer})


def primed(cache: TokenCache, value: str, lookup: CountingLookup) -> None:
    """Cache `value`. The verification that first fetches the set does not cache: a fetch
    while a token is verified leaves unknown which set verified it, so the next one does."""
    calls = lookup.calls
    for _ in range(3):
        cache.verify(value, lookup)
    assert lookup.calls == calls + 2


def test_a_key_set_change_refuses_tokens_cached_under_the_old_set(jwks: JwksServer) -> None:
    monotonic = Clock(1000.0)
    keyring = Keyring(clock=monotonic)
    path = "/rotation"
    jwt_config = url_config(jwks.serve(path, [public_jwk(OLD, "old", "ES256")]))
    cache = TokenCache(jwt_config, keyring, clock=Clock(time.time()))
    lookup = CountingLookup(keyring)
    old = token("42", key=OLD, kid="old")
    primed(cache, old, lookup)
    assert (lookup.calls, jwks.count(path)) == (2, 1)

    # An unknown kid refetches the set; the same keys again flush nothing.
    monotonic.now += 31
    assert reason(cache.verify, token("42", key=NEW, kid="nope"), lookup) == "unknown_kid"
    assert (lookup.calls, jwks.count(path)) == (3, 2)
    cache.verify(old, lookup)
    assert lookup.calls == 3

    # The issuer rotates: only the new key is published, and a token signed with it arrives.
    jwks.serve(path, [public_jwk(NEW, "new", "ES256")])
    monotonic.now += 31
    cache.verify(token("42", key=NEW, kid="new"), lookup)
    assert (lookup.calls, jwks.count(path)) == (4, 3)
    # The cached old-key token, far from its exp and TTL, is verified again: refused.
    assert reason(cache.verify, old, lookup) == "unknown_kid"
    assert lookup.calls == 5


def test_a_stale_key_set_sends_cached_tokens_back_to_verification(jwks: JwksServer) -> None:
    monotonic = Clock(1000.0)
    keyring = Keyring(clock=monotonic)
    path = "/stale"
    jwt_config = url_config(jwks.serve(path, [public_jwk(OLD, "old", "ES256")]), 300)
    cache = TokenCache(jwt_config, keyring, clock=Clock(time.time()))
    lookup = CountingLookup(keyring)
    old = token("42", key=OLD, kid="old")
    primed(cache, old, lookup)
    monotonic.now += 299
    cache.verify(old, lookup)
    assert (lookup.calls, jwks.count(path)) == (2, 1)
    monotonic.now += 1  # the set is due for a refresh: the token goes through verification
    cache.verify(old, lookup)  # the same keys came back: cached again
    cache.verify(old, lookup)
    assert (lookup.calls, jwks.count(path)) == (3, 2)


def test_without_the_keyring_url_keyed_tokens_are_not_cached(jwks: JwksServer) -> None:
    keyring = Keyring()
    jwt_config = url_config(jwks.serve("/unwatched", [public_jwk(OLD, "old", "ES256")]))
    cache = TokenCache(jwt_config, keyring=None)
    lookup = CountingLookup(keyring)
    old = token("42", key=OLD, kid="old")
    cache.verify(old, lookup)
    cache.verify(old, lookup)
    assert lookup.calls == 2 and len(cache) == 0


def test_the_active_cache_belongs_to_one_config() -> None:
    active = ActiveTokenCache()
    active.activate(JWT)
    cache = active.get(JWT)
    assert cache is not None and cache.config is JWT
    other = replace(JWT)  # another bundle's config, equal in content
    assert active.get(other) is None
    active.activate(JWT)  # the same bundle notified again: the cache stays
    assert active.get(JWT) is cache
    active.activate(other)
    assert active.get(JWT) is None
    assert active.get(other) is not cache and active.get(other) is not None
    for off in (replace(JWT, cache_ttl_seconds=0), replace(JWT, cache_max_entries=0), None):
        active.activate(off)
        assert active.get(off) is None


def test_identify_uses_only_the_cache_of_its_own_config() -> None:
    lookup = CountingLookup()
    creds = read_credentials({"authorization": (bearer(token("42"))["authorization"],)}, IDENTITY)
    mine, foreign = TokenCache(JWT), TokenCache(replace(JWT))
    for tokens in (mine, mine, foreign, foreign):
        assert identify(creds, IDENTITY, lookup, tokens).principal.uid == EntityRef("User", "42")
    assert lookup.calls == 3 and len(foreign) == 0
    cached = identify(creds, IDENTITY, lookup, mine)
    assert cached.token is not None and cached.token.jti is not None and cached.scopes == ()
