"""Bearer JWT verification with real keys: what passes, and why everything else fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt
import pytest

from pdp.authn.jwks import parse_jwks
from pdp.authn.jwt import Issuer, JwtConfig, verify
from pdp.authn.principal import PrincipalMapping
from pdp.errors import AuthnError
from tests.support.gateway import ec_key, public_jwk, public_pem, rsa_key, token

ISSUER = "https://idp.test/"
EC = ec_key()
RSA = rsa_key()
KEYS = parse_jwks(
    {"keys": [public_jwk(EC, "ec1", "ES256"), public_jwk(RSA, "rsa1", "RS256")]},
    ["ES256", "RS256"],
)


def config(**overrides: Any) -> JwtConfig:
    issuer = Issuer(
        issuer=ISSUER,
        audiences=("api",),
        algorithms=("ES256", "RS256"),
        principal=PrincipalMapping("User"),
        keys=KEYS,
        leeway_seconds=5,
    )
    fields = {f: getattr(issuer, f) for f in issuer.__slots__}
    return JwtConfig({ISSUER: Issuer(**{**fields, **overrides})})


def lookup(issuer: Issuer, kid: str | None, algorithm: str) -> Any:
    return issuer.keys.get(kid, algorithm) if issuer.keys else None


def good(**claims: Any) -> str:
    defaults = {"iss": ISSUER, "aud": "api"}
    return token(key=EC, kid="ec1", **{**defaults, **claims})


def reason(value: str, cfg: JwtConfig | None = None) -> str:
    with pytest.raises(AuthnError) as info:
        verify(value, cfg or config(), lookup)
    assert len(value) < 4 or value not in str(info.value)  # never echo the token
    return info.value.reason


def b64(data: Any) -> str:
    raw = json.dumps(data).encode() if not isinstance(data, bytes) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_valid_tokens_verify_with_each_allowed_algorithm() -> None:
    verified = verify(good(sub="42", jti="j1"), config(), lookup)
    assert verified.claims["sub"] == "42" and verified.kid == "ec1" and verified.jti == "j1"
    rsa = token(key=RSA, algorithm="RS256", kid="rsa1", iss=ISSUER, aud="api")
    assert verify(rsa, config(), lookup).kid == "rsa1"


def test_one_of_several_audiences_is_enough() -> None:
    assert verify(good(aud=["other", "api"]), config(), lookup)


def test_leeway_applies_to_exp_and_nbf() -> None:
    now = int(time.time())
    assert verify(good(exp=now - 3), config(), lookup)
    assert verify(good(nbf=now + 3), config(), lookup)
    assert reason(good(exp=now - 30)) == "expired"
    assert reason(good(nbf=now + 30)) == "not_yet_valid"


def test_a_future_iat_is_told_apart_from_a_future_nbf() -> None:
    """PyJWT raises ImmatureSignatureError for both; the reason names the claim."""
    now = int(time.time())
    assert verify(good(iat=now + 3), config(), lookup)  # within the leeway
    with pytest.raises(AuthnError) as info:
        verify(good(iat=now + 3600), config(), lookup)
    assert (info.value.reason, info.value.message) == (
        "bad_iat",
        "token was issued in the future (iat)",
    )
    with pytest.raises(AuthnError) as info:
        verify(good(iat=now, nbf=now + 3600), config(), lookup)
    assert (info.value.reason, info.value.message) == (
        "not_yet_valid",
        "token is not yet valid (nbf)",
    )
    assert reason(good(iat=now + 3600, nbf=now + 3600)) == "bad_iat"  # PyJWT checks iat first
    assert reason(good(iat="yesterday")) == "bad_iat"


def test_alg_none_is_refused() -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'iss': ISSUER, 'sub': '1'})}."
    assert reason(unsigned) == "alg_none"


def test_hmac_signed_with_the_rsa_public_key_is_refused() -> None:
    # Algorithm confusion: the attacker signs HS256 using the public key as the secret.
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa1"})
    payload = b64({"iss": ISSUER, "aud": "api", "sub": "admin", "exp": int(time.time()) + 60})
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(public_pem(RSA), signing_input, hashlib.sha256).digest()
    forged = f"{header}.{payload}.{b64(signature)}"
    assert reason(forged) == "alg_not_allowed"


def test_a_key_is_only_used_with_its_own_algorithm() -> None:
    # RS256 is allowed for the issuer, but kid ec1 is an EC key: no RS256 key of that kid.
    confused = token(key=RSA, algorithm="RS256", kid="ec1", iss=ISSUER, aud="api")
    assert reason(confused) == "unknown_kid"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"iss": "https://evil.test/"}, "unknown_issuer"),
        ({"iss": None}, "unknown_issuer"),
        ({"aud": "other"}, "wrong_audience"),
        ({"aud": None}, "missing_claim"),
        ({"exp": None}, "missing_claim"),
    ],
)
def test_claim_failures(claims: dict[str, Any], expected: str) -> None:
    assert reason(good(**claims)) == expected


def test_unknown_kid_and_missing_kid() -> None:
    assert reason(token(key=EC, kid="nope", iss=ISSUER, aud="api")) == "unknown_kid"
    assert reason(token(key=EC, kid=None, iss=ISSUER, aud="api")) == "unknown_kid"


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
def test_key_reference_headers_are_refused(header: str) -> None:
    value: Any = "https://attacker.test/jwks.json"
    if header == "jwk":
        value = public_jwk(EC, "ec1", "ES256")
    elif header == "x5c":
        value = ["MIIB"]
    assert reason(token(key=EC, kid="ec1", headers={header: value}, iss=ISSUER, aud="api")) == (
        "key_in_header"
    )


def test_tampered_payload_fails_the_signature() -> None:
    header, _, signature = good(sub="42").split(".")
    payload = b64({"iss": ISSUER, "aud": "api", "sub": "admin", "exp": int(time.time()) + 60})
    assert reason(f"{header}.{payload}.{signature}") == "bad_signature"


def test_signature_by_another_key_with_the_same_kid_fails() -> None:
    assert reason(token(key=ec_key(), kid="ec1", iss=ISSUER, aud="api")) == "bad_signature"


@pytest.mark.parametrize(
    "value", ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30", "x" * 100]
)
def test_malformed_tokens(value: str) -> None:
    assert reason(value) == "malformed"


def test_huge_tokens_are_refused_before_parsing() -> None:
    assert reason(good(padding="x" * 9000)) == "too_large"


def test_algorithm_outside_the_allowlist() -> None:
    cfg = config(algorithms=("ES256",))
    rsa = token(key=RSA, algorithm="RS256", kid="rsa1", iss=ISSUER, aud="api")
    assert reason(rsa, cfg) == "alg_not_allowed"


def test_unsupported_crit_header_is_refused() -> None:
    value = token(key=EC, kid="ec1", headers={"crit": ["exp-ext"]}, iss=ISSUER, aud="api")
    assert reason(value) in ("malformed", "invalid")


def test_pyjwt_is_the_one_doing_the_cryptography() -> None:
    # Sanity: the library rejects what we reject, so our reasons describe its verdicts.
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(
            token(key=ec_key(), kid="ec1", iss=ISSUER, aud="api"),
            key=KEYS.get("ec1", "ES256"),
            algorithms=["ES256"],
            audience="api",
        )
