"""Key sets: parsing binds each key to allowed algorithms; URL sets are cached and rate limited."""

from __future__ import annotations

import socket
import time

import pytest

from pdp.authn.jwks import JwksUrl, Keyring, UrlKeySource, check_url, fetch_jwks, parse_jwks
from tests.support.gateway import JwksServer, ec_key, public_jwk, rsa_key


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_bound_to_allowed_algorithms_of_their_type() -> None:
    rsa = public_jwk(rsa_key(), "r1", "RS256")
    del rsa["alg"]
    ec = public_jwk(ec_key(), "e1", "ES256")
    keys = parse_jwks({"keys": [rsa, ec]}, ["RS256", "PS256", "ES256"])
    assert set(keys.keys) == {("r1", "RS256"), ("r1", "PS256"), ("e1", "ES256")}
    assert keys.get("r1", "PS256") is not None
    assert keys.get("e1", "RS256") is None


def test_declared_alg_wins_and_unusable_keys_are_skipped() -> None:
    declared = public_jwk(rsa_key(), "r1", "PS256")
    encryption = {**public_jwk(rsa_key(), "enc", "RS256"), "use": "enc"}
    keys = parse_jwks({"keys": [declared, encryption]}, ["RS256", "PS256"])
    assert set(keys.keys) == {("r1", "PS256")}


def test_curve_must_match_the_algorithm() -> None:
    p256 = public_jwk(ec_key(), "e1", "ES256")
    del p256["alg"]
    assert len(parse_jwks({"keys": [p256]}, ["ES384"])) == 0


@pytest.mark.parametrize(
    "document", ["not json", "[]", {"keys": "x"}, {"keys": [{"kid": "x"}]}, {"no": "keys"}]
)
def test_malformed_sets_are_refused(document: object) -> None:
    with pytest.raises(ValueError):
        parse_jwks(document, ["ES256"])


def test_broken_key_material_is_refused() -> None:
    bad = {**public_jwk(ec_key(), "e1", "ES256"), "x": "AAAA"}
    with pytest.raises(ValueError, match="e1"):
        parse_jwks({"keys": [bad]}, ["ES256"])


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://idp.example/.well-known/jwks.json", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://localhost/jwks", True),
        ("http://idp.example/jwks", False),
        ("file:///etc/passwd", False),
        ("https:///nohost", False),
    ],
)
def test_only_https_or_loopback_urls(url: str, ok: bool) -> None:
    if ok:
        assert check_url(url) == url
    else:
        with pytest.raises(ValueError):
            check_url(url)


def test_url_source_fetches_once_then_serves_from_cache() -> None:
    key = ec_key()
    clock = Clock()
    with JwksServer() as server:
        url = server.serve("/jwks", [public_jwk(key, "k1", "ES256")])
        source = UrlKeySource(JwksUrl(url, ("ES256",), 300, 30, 2), clock=clock)
        assert source.would_fetch("k1", "ES256")
        assert source.get("k1", "ES256") is not None
        for _ in range(5):
            assert source.get("k1", "ES256") is not None
        assert server.count("/jwks") == 1
        assert not source.would_fetch("k1", "ES256")
        clock.now += 301  # the cache expired: fetched again on next use
        assert source.would_fetch("k1", "ES256")
        assert source.get("k1", "ES256") is not None
        assert server.count("/jwks") == 2


def test_unknown_kid_refresh_is_rate_limited_and_rotation_overlaps() -> None:
    old, new = ec_key(), ec_key()
    clock = Clock()
    with JwksServer() as server:
        url = server.serve("/jwks", [public_jwk(old, "old", "ES256")])
        source = UrlKeySource(JwksUrl(url, ("ES256",), 300, 30, 2), clock=clock)
        assert source.get("old", "ES256") is not None
        # Unknown kids within the rate limit window never reach the network.
        for kid in ("x1", "x2", "x3", "new"):
            assert source.get(kid, "ES256") is None
        assert server.count("/jwks") == 1
        # The issuer publishes the new key next to the old one (the overlap window).
        server.serve("/jwks", [public_jwk(old, "old", "ES256"), public_jwk(new, "new", "ES256")])
        clock.now += 31
        assert source.get("new", "ES256") is not None
        assert source.get("old", "ES256") is not None
        assert server.count("/jwks") == 2
        # The old key is retired: once the cache expires, it is gone.
        server.serve("/jwks", [public_jwk(new, "new", "ES256")])
        clock.now += 301
        assert source.get("old", "ES256") is None
        assert source.get("new", "ES256") is not None
        assert server.count("/jwks") == 3


def test_a_failed_fetch_keeps_the_previous_keys() -> None:
    key = ec_key()
    clock = Clock()
    with JwksServer() as server:
        url = server.serve("/jwks", [public_jwk(key, "k1", "ES256")])
        source = UrlKeySource(JwksUrl(url, ("ES256",), 10, 1, 2), clock=clock)
        assert source.get("k1", "ES256") is not None
        server.documents.pop("/jwks")  # now 404
        clock.now += 11
        assert source.get("k1", "ES256") is not None
        assert server.count("/jwks") == 2


def test_fetch_is_bounded_by_the_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        started = time.monotonic()
        with pytest.raises(OSError):
            fetch_jwks(f"http://127.0.0.1:{listener.getsockname()[1]}/jwks", 0.3)
        assert time.monotonic() - started < 3
    finally:
        listener.close()


def test_keyring_shares_one_source_per_spec() -> None:
    ring = Keyring()
    spec = JwksUrl("https://idp.example/jwks", ("ES256",))
    assert ring.source(spec) is ring.source(JwksUrl("https://idp.example/jwks", ("ES256",)))
    assert ring.source(spec) is not ring.source(JwksUrl("https://idp.example/jwks", ("RS256",)))
