"""Bearer JWT verification with PyJWT: per-issuer algorithm allowlist, keys by kid, claims."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from pdp.authn.jwks import JwksUrl, KeySet
from pdp.authn.principal import PrincipalMapping
from pdp.errors import AuthnError

DEFAULT_MAX_TOKEN_BYTES = 8192
DEFAULT_CACHE_TTL_SECONDS = 60.0  # verified tokens are cached this long at most (0: off)
DEFAULT_CACHE_MAX_ENTRIES = 10_000
# Header parameters that point at keys chosen by the token's author; pdp never follows them.
KEY_REFERENCE_HEADERS = ("jku", "x5u", "jwk", "x5c")


@dataclass(frozen=True, slots=True)
class Issuer:
    """One trusted token issuer: who, for whom, signed how, with which keys, mapped to whom."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    principal: PrincipalMapping
    keys: KeySet | None = None  # from a JWKS file in the bundle
    jwks_url: JwksUrl | None = None  # fetched at run time
    leeway_seconds: float = 30.0
    required_claims: tuple[str, ...] = ("exp",)
    scopes_claim: str = "scope"


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """The trusted issuers, by `iss`."""

    issuers: Mapping[str, Issuer]
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS  # see pdp.authn.cache
    cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature, issuer, audience and times were all checked."""

    issuer: Issuer
    claims: Mapping[str, Any]
    kid: str | None
    jti: str | None


KeyLookup = Callable[[Issuer, str | None, str], "jwt.PyJWK | None"]


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """What can be read from a token before verification: just enough to pick issuer and key."""

    issuer: Issuer
    kid: str | None
    algorithm: str


def peek(token: str, config: JwtConfig) -> TokenHeader:
    """Check the token's shape and header and find its issuer; AuthnError when refused.

    Nothing read here is trusted: it only selects the issuer whose keys must verify the token.
    """
    if len(token) > config.max_token_bytes:
        raise AuthnError("too_large", f"token is longer than {config.max_token_bytes} bytes")
    try:
        parts = jwt.decode_complete(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise AuthnError("malformed", "token is not a well-formed JWS compact JWT") from None
    header, unverified = parts["header"], parts["payload"]
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or not algorithm or algorithm.lower() == "none":
        raise AuthnError("alg_none", "unsigned token (alg none) refused")
    for name in KEY_REFERENCE_HEADERS:
        if name in header:
            raise AuthnError(
                "key_in_header", f"token header carries {name!r}; pdp never takes keys from tokens"
            )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AuthnError("malformed", "token kid must be a string")
    iss = unverified.get("iss")
    issuer = config.issuers.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        raise AuthnError("unknown_issuer", "token issuer is not trusted")
    if algorithm not in issuer.algorithms:
        raise AuthnError("alg_not_allowed", f"algorithm {algorithm} is not allowed for the issuer")
    return TokenHeader(issuer, kid, algorithm)


def verify(token: str, config: JwtConfig, lookup: KeyLookup) -> VerifiedToken:
    """Verify `token` with the issuer's keys; AuthnError(reason) on any failure."""
    return verify_peeked(token, peek(token, config), lookup)


def verify_peeked(token: str, head: TokenHeader, lookup: KeyLookup) -> VerifiedToken:
    """Verify `token`, whose header `peek` read as `head`; AuthnError(reason) on any failure."""
    issuer = head.issuer
    key = lookup(issuer, head.kid, head.algorithm)
    if key is None:
        raise AuthnError("unknown_kid", f"no {head.algorithm} key with kid {head.kid!r}")
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=list(issuer.algorithms),
            audience=list(issuer.audiences),
            issuer=issuer.issuer,
            leeway=issuer.leeway_seconds,
            options={
                "require": list(issuer.required_claims),
                "strict_aud": False,
                "enforce_minimum_key_length": True,  # an error, never a warning on stderr
            },
        )
    except jwt.ImmatureSignatureError:
        raise _not_yet_valid(token, issuer.leeway_seconds) from None
    except jwt.InvalidTokenError as exc:
        raise _failure(exc) from None
    except jwt.InvalidKeyError:  # keys are checked at load; should a weak one slip through
        raise AuthnError("invalid", "the verification key was refused") from None
    jti = claims.get("jti")
    return VerifiedToken(issuer, claims, head.kid, jti if isinstance(jti, str) else None)


_FAILURES: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "token has expired"),
    (jwt.InvalidAudienceError, "wrong_audience", "token audience is not accepted"),
    (jwt.InvalidIssuerError, "wrong_issuer", "token issuer does not match"),
    (jwt.InvalidIssuedAtError, "bad_iat", "token iat is not a number"),
    (jwt.MissingRequiredClaimError, "missing_claim", "token lacks a required claim"),
    (jwt.InvalidSignatureError, "bad_signature", "token signature does not verify"),
    (jwt.InvalidAlgorithmError, "alg_not_allowed", "token algorithm is not allowed"),
    (jwt.DecodeError, "malformed", "token is not a well-formed JWT"),
)


def _not_yet_valid(token: str, leeway: float) -> AuthnError:
    """Which claim made PyJWT call the token immature (it raises the same error for both):
    `iat` (checked first, as PyJWT does) or `nbf`, judged on the refused token's claims."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        claims = {}
    later = time.time() + leeway
    if _after(claims.get("iat"), later):
        return AuthnError("bad_iat", "token was issued in the future (iat)")
    if _after(claims.get("nbf"), later):
        return AuthnError("not_yet_valid", "token is not yet valid (nbf)")
    return AuthnError("not_yet_valid", "token is not yet valid (nbf or iat)")


def _after(value: Any, moment: float) -> bool:
    """Whether a NumericDate claim is after `moment`, compared as PyJWT does (`int(value)`)."""
    try:
        return int(value) > moment
    except (TypeError, ValueError, OverflowError):
        return False


def _failure(exc: jwt.InvalidTokenError) -> AuthnError:
    for kind, reason, message in _FAILURES:
        if isinstance(exc, kind):
            if isinstance(exc, jwt.MissingRequiredClaimError):
                message = f"token lacks the required {exc.claim!r} claim"
            return AuthnError(reason, message)
    return AuthnError("invalid", "token is not valid")
