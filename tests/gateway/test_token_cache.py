"""The token cache on the gateway path: routes.yaml settings, `check`, bundle reloads, a server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pdp.authn.cache import TokenCache
from pdp.bundle import load_bundle
from pdp.errors import BundleError
from pdp.gateway.check import check
from pdp.gateway.result import GatewayRequest, GatewayResponse
from pdp.live.reload import ACTIVATED, Reloader
from pdp.live.store import BundleStore
from pdp.server.extauthz import ExtAuthzService
from tests.support.clock import ManualClock
from tests.support.gateway import (
    KID,
    bearer,
    bundle_with,
    check_request,
    ec_key,
    ext_authz,
    metadata_of,
    public_jwk,
    token,
)
from tests.support.lookup import CountingLookup
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import InProcessServer

ROUTES = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
assert "  jwt:\n    issuers:\n" in ROUTES and "leeway_seconds: 30" in ROUTES


def routes_with(settings: str) -> str:
    """The example routes.yaml with `settings` (indented lines) under identity.jwt."""
    return ROUTES.replace("  jwt:\n", f"  jwt:\n{settings}", 1)


def request(path: str, value: str) -> GatewayRequest:
    headers = {name: (text,) for name, text in bearer(value).items()}
    return GatewayRequest("GET", path, headers, source_address="10.0.0.9")


def test_settings_come_from_routes_yaml(tmp_path: Path) -> None:
    settings = "    token_cache:\n      ttl_seconds: 5\n      max_entries: 3\n"
    jwt = load_bundle(bundle_with(tmp_path / "b", routes_with(settings))).gateway.identity.jwt
    assert jwt is not None and (jwt.cache_ttl_seconds, jwt.cache_max_entries) == (5, 3)
    default = load_bundle(EXAMPLE_BUNDLE).gateway.identity.jwt
    assert default is not None
    assert (default.cache_ttl_seconds, default.cache_max_entries) == (60, 10_000)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{ttl: 5}", "identity.jwt.token_cache.ttl: unknown key"),
        ("{ttl_seconds: -1}", "token_cache.ttl_seconds must be between 0 and 3600"),
        ("{ttl_seconds: 3601}", "token_cache.ttl_seconds must be between 0 and 3600"),
        ("{ttl_seconds: soon}", "token_cache.ttl_seconds must be a number"),
        ("{max_entries: 1000001}", "token_cache.max_entries must be between 0 and 1000000"),
        ("60", "identity.jwt.token_cache must be a mapping"),
    ],
)
def test_bad_settings_are_located(tmp_path: Path, settings: str, message: str) -> None:
    text = routes_with(f"    token_cache: {settings}\n")
    line = text.splitlines().index(f"    token_cache: {settings}") + 1
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_with(tmp_path / "b", text))
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith(f"routes.yaml:{line}:") and message in p for p in found), found


def test_check_serves_a_reused_token_from_the_cache() -> None:
    bundle = load_bundle(EXAMPLE_BUNDLE)
    assert bundle.gateway is not None and bundle.gateway.identity.jwt is not None
    tokens = TokenCache(bundle.gateway.identity.jwt)
    lookup = CountingLookup()
    value = token("42", scope="orders:read")
    first = check(bundle, request("/api/users/42/orders", value), lookup, tokens)
    again = check(bundle, request("/api/users/42/orders", value), lookup, tokens)
    assert first.allowed and again.allowed and lookup.calls == 1
    assert first.headers[0] == again.headers[0] == ("x-pdp-principal", 'User::"42"')
    assert first.result.decision_id != again.result.decision_id
    # What the decision log says about the token survives the cache.
    assert again.result.token_jti == first.result.token_jti
    assert again.result.token_jti is not None and again.result.token_kid == KID
    assert again.result.request is not None
    assert again.result.request.context["scopes"] == ["orders:read"]  # type: ignore[index]
    # The same cached identity is still decided by policy: BOLA stays a 403.
    other = check(bundle, request("/api/users/43/orders", value), lookup, tokens)
    assert other.http_status == 403 and lookup.calls == 1


def test_an_expired_cached_token_is_verified_again_and_a_401(tmp_path: Path) -> None:
    routes = ROUTES.replace("leeway_seconds: 30", "leeway_seconds: 0")
    bundle = load_bundle(bundle_with(tmp_path / "b", routes))
    assert bundle.gateway is not None and bundle.gateway.identity.jwt is not None
    clock = ManualClock(time.time())  # the cache's clock; PyJWT reads the real one
    tokens = TokenCache(bundle.gateway.identity.jwt, clock=clock)
    lookup = CountingLookup()
    expires = int(clock()) + 60
    value = token("42", exp=expires)
    for _ in range(2):
        assert check(bundle, request("/api/users/42/orders", value), lookup, tokens).allowed
    assert lookup.calls == 1
    clock.advance(expires - clock() - 0.001)
    assert check(bundle, request("/api/users/42/orders", value), lookup, tokens).allowed
    assert lookup.calls == 1
    clock.advance(0.001)  # exp by the cache's clock: never served again, verified every time
    for calls in (2, 3):
        assert check(bundle, request("/api/users/42/orders", value), lookup, tokens).allowed
        assert lookup.calls == calls
    # Verified again once expired by PyJWT's clock too, a token is a 401 (and never cached).
    late = token("42", exp=1_000_000_000, iat=999_999_000)
    for calls in (4, 5):
        answer = check(bundle, request("/api/users/42/orders", late), lookup, tokens)
        assert answer.http_status == 401 and answer.result.authn_failure == "expired"
        assert ("www-authenticate", 'Bearer error="invalid_token"') in answer.headers
        assert lookup.calls == calls


def test_a_bundle_reload_through_the_store_empties_the_cache(tmp_path: Path) -> None:
    root = bundle_with(tmp_path / "bundle")
    store = BundleStore()
    reloader = Reloader(root, store)
    assert reloader.reload().outcome == ACTIVATED
    service = ExtAuthzService(store)  # follows the store: one cache per activated bundle
    lookup = CountingLookup()
    value = token("42")

    def decide() -> GatewayResponse:
        bundle = store.current
        assert bundle is not None and bundle.gateway is not None
        tokens = service.tokens.get(bundle.gateway.identity.jwt)
        assert tokens is not None
        return check(bundle, request("/api/users/42/orders", value), lookup, tokens)

    assert decide().allowed and decide().allowed
    assert lookup.calls == 1
    before = store.current
    assert before is not None and before.gateway is not None
    policy = root / "orders" / "customers.cedar"
    policy.write_text(policy.read_text() + "\n// reviewed\n")  # a policy-only change
    assert reloader.reload().outcome == ACTIVATED
    assert store.current is not before
    assert service.tokens.get(before.gateway.identity.jwt) is None
    assert decide().allowed and decide().allowed
    assert lookup.calls == 2


def test_a_key_removed_from_the_bundle_refuses_its_cached_tokens(tmp_path: Path) -> None:
    old, new = ec_key(), ec_key()

    def key_set(key: object) -> str:
        return json.dumps({"keys": [public_jwk(key, KID, "ES256")]})

    root = bundle_with(tmp_path / "bundle", files={"keys/orders.jwks.json": key_set(old)})
    store = BundleStore()
    reloader = Reloader(root, store)
    assert reloader.reload().outcome == ACTIVATED
    signed_old, signed_new = token("42", key=old), token("42", key=new)
    ask = check_request("GET", "/api/users/42/orders", bearer(signed_old))
    with InProcessServer(store) as server, ext_authz(server.address) as stub:
        assert stub.Check(ask, timeout=10).status.code == 0
        assert stub.Check(ask, timeout=10).status.code == 0  # now from the cache
        # The issuer replaced the key (same kid): the bundle's key set changes and reloads.
        (root / "keys" / "orders.jwks.json").write_text(key_set(new))
        assert reloader.reload().outcome == ACTIVATED
        refused = stub.Check(ask, timeout=10)
        assert refused.status.code == 16
        assert metadata_of(refused)["reason"] == "bad_signature"
        fresh = check_request("GET", "/api/users/42/orders", bearer(signed_new))
        assert stub.Check(fresh, timeout=10).status.code == 0
