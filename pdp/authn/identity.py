"""Who is calling: credentials read from a request, verified, and reduced to one principal."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt

from pdp.authn.cache import TokenCache, TokenIdentity
from pdp.authn.config import IdentityConfig
from pdp.authn.jwks import Keyring
from pdp.authn.jwt import Issuer, KeyLookup, VerifiedToken, peek, verify
from pdp.authn.principal import Principal, scopes
from pdp.errors import AuthnError

JWT, API_KEY, MTLS, NONE = "jwt", "api_key", "mtls", "none"
# Failures of a credential presented in a form pdp does not read (RFC 6750 `invalid_request`),
# as opposed to a readable credential that does not verify (`invalid_token`).
UNSUPPORTED_SCHEME, MALFORMED_AUTHORIZATION, DUPLICATE_CREDENTIAL = (
    "unsupported_scheme",
    "malformed_authorization",
    "duplicate_credential",
)
INVALID_REQUEST_REASONS = frozenset(
    (UNSUPPORTED_SCHEME, MALFORMED_AUTHORIZATION, DUPLICATE_CREDENTIAL)
)
# RFC 6750 b64token: the one credential after `Bearer` and its spaces (a JWS compact JWT is one).
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Schemes named in a failure's message; any other first word (a bare token!) is never repeated.
_KNOWN_SCHEMES = {
    s.lower(): s
    for s in ("Basic", "Digest", "Token", "Negotiate", "NTLM", "DPoP", "HOBA", "Mutual", "JWT")
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one request presents. `peer` and `jwt_payload` only when the transport is trusted."""

    bearer: str | None = None
    api_key: str | None = None
    peer: str | None = None
    jwt_payload: Mapping[str, Any] | None = None
    problem: AuthnError | None = None  # a credential present but unreadable


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified caller: `principal` None means no credential and no anonymous principal."""

    kind: str  # jwt, api_key, mtls or none
    principal: Principal | None
    anonymous: bool = False
    peer: str | None = None  # a verified mTLS peer, also when the principal is a user
    scopes: tuple[str, ...] = ()
    claims: Mapping[str, Any] | None = None
    token: VerifiedToken | None = None
    api_key: str | None = None  # the key's name, never the key
    entities_json: str | None = None  # the principal as Cedar JSON (kept with a cached token)


def read_credentials(
    headers: Mapping[str, tuple[str, ...]],
    config: IdentityConfig,
    peer: str | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
) -> Credentials:
    """Credentials from lowercase-named headers (each a tuple of values) and trusted metadata."""
    problem: AuthnError | None = None
    bearer: str | None = None
    authorization = headers.get("authorization", ())
    if len(authorization) > 1:
        problem = AuthnError(DUPLICATE_CREDENTIAL, "more than one Authorization header")
    elif authorization:
        try:
            bearer = bearer_token(authorization[0])
        except AuthnError as exc:
            problem = exc
    api_key: str | None = None
    if config.api_keys is not None:
        values = headers.get(config.api_keys.header, ())
        if len(values) > 1:
            problem = problem or AuthnError(DUPLICATE_CREDENTIAL, "more than one API key header")
        elif values:
            api_key = values[0].strip()
    payload = None
    if config.jwt_authn is not None and metadata:
        namespace = metadata.get(config.jwt_authn.namespace) or {}
        found = namespace.get(config.jwt_authn.key)
        payload = found if isinstance(found, Mapping) else None
    return Credentials(
        bearer=bearer,
        api_key=api_key,
        peer=peer if config.mtls is not None and peer else None,
        jwt_payload=payload,
        problem=problem,
    )


def bearer_token(value: str) -> str:
    """The token of an `Authorization: Bearer <token>` value; AuthnError for anything else.

    A credential that is presented but not understood is never ignored (that would make its
    sender anonymous): another scheme (`Basic`, `Token`, a bare token), an empty value,
    `Bearer` without a token, or more than one token (Envoy's `headers` map joins repeated
    headers with a comma) each fail. Between `Bearer` and the token, any number of spaces
    (RFC 6750: `1*SP`); around the value, the optional whitespace HTTP allows.
    """
    text = value.strip(" \t")
    if not text:
        raise AuthnError(MALFORMED_AUTHORIZATION, "empty Authorization header")
    scheme, _, rest = text.partition(" ")
    if scheme.lower() != "bearer":
        named = _KNOWN_SCHEMES.get(scheme.lower())
        what = f"the {named} scheme" if named else "a scheme other than Bearer"
        raise AuthnError(
            UNSUPPORTED_SCHEME, f"Authorization uses {what}; only Bearer tokens are accepted"
        )
    token = rest.lstrip(" ")
    if not token:
        raise AuthnError(MALFORMED_AUTHORIZATION, "Authorization: Bearer without a token")
    if "," in token:
        raise AuthnError(
            DUPLICATE_CREDENTIAL,
            "more than one Authorization value (repeated headers arrive joined by a comma)",
        )
    if not _B64TOKEN.fullmatch(token):
        raise AuthnError(
            MALFORMED_AUTHORIZATION, "Authorization: Bearer is not followed by exactly one token"
        )
    return token


def key_lookup(keyring: Keyring) -> KeyLookup:
    """Keys from the issuer's JWKS file first, then from its JWKS URL through `keyring`."""

    def lookup(issuer: Issuer, kid: str | None, algorithm: str) -> pyjwt.PyJWK | None:
        if issuer.keys is not None:
            key = issuer.keys.get(kid, algorithm)
            if key is not None:
                return key
        if issuer.jwks_url is not None:
            return keyring.source(issuer.jwks_url).get(kid, algorithm)
        return None

    return lookup


def pending_fetch(
    headers: Mapping[str, tuple[str, ...]],
    config: IdentityConfig,
    keyring: Keyring,
    tokens: TokenCache | None = None,
) -> bool:
    """Whether verifying this request's bearer token would fetch a JWKS URL right now."""
    if config.jwt is None or not any(i.jwks_url for i in config.jwt.issuers.values()):
        return False
    bearer = read_credentials(headers, config).bearer
    if not bearer:
        return False
    if tokens is not None and tokens.config is config.jwt and tokens.cached(bearer):
        return False
    try:
        head = peek(bearer, config.jwt)
    except AuthnError:
        return False
    issuer = head.issuer
    if issuer.jwks_url is None:
        return False
    if issuer.keys is not None and issuer.keys.get(head.kid, head.algorithm) is not None:
        return False
    return keyring.source(issuer.jwks_url).would_fetch(head.kid, head.algorithm)


def identify(
    creds: Credentials,
    config: IdentityConfig,
    lookup: KeyLookup,
    tokens: TokenCache | None = None,
) -> Identity:
    """Verify every presented credential (any failure: AuthnError), then pick the principal:
    the JWT subject, else the API key's principal, else the mTLS peer, else anonymous.

    `tokens`, the token cache of this config, serves a bearer token verified before."""
    if creds.problem is not None:
        raise creds.problem
    verified = _verified_token(creds, config, lookup, tokens)
    claims = verified.token.claims if verified is not None else creds.jwt_payload
    key = None
    if creds.api_key is not None:
        if config.api_keys is None:  # read_credentials only reads the header when configured
            raise AuthnError("unknown_api_key", "API keys are not accepted")
        key = config.api_keys.lookup(creds.api_key)
    peer_principal = None
    if creds.peer is not None and config.mtls is not None:
        peer_principal = Principal(config.mtls.principal(creds.peer))
    if verified is not None:
        return Identity(
            JWT,
            verified.principal,
            peer=creds.peer,
            scopes=verified.scopes,
            claims=claims,
            token=verified.token,
            entities_json=verified.entities_json,
        )
    if claims is not None:
        issuer = _metadata_issuer(claims, config)
        return Identity(
            JWT,
            issuer.principal.principal(claims),
            peer=creds.peer,
            scopes=scopes(claims, issuer.scopes_claim),
            claims=claims,
        )
    if key is not None:
        return Identity(API_KEY, Principal(key.principal), peer=creds.peer, api_key=key.name)
    if peer_principal is not None:
        return Identity(MTLS, peer_principal, peer=creds.peer)
    if config.anonymous is not None:
        return Identity(NONE, Principal(config.anonymous), anonymous=True)
    return Identity(NONE, None)


def _verified_token(
    creds: Credentials, config: IdentityConfig, lookup: KeyLookup, tokens: TokenCache | None
) -> TokenIdentity | None:
    if creds.bearer is None or creds.jwt_payload is not None:
        return None  # a jwt_authn payload stands for the token Envoy already verified
    if config.jwt is None or not config.jwt.issuers:
        raise AuthnError("unknown_issuer", "bearer tokens are not accepted here")
    if tokens is not None and tokens.config is config.jwt:
        return tokens.verify(creds.bearer, lookup)
    return TokenIdentity.of(verify(creds.bearer, config.jwt, lookup))


def _metadata_issuer(claims: Mapping[str, Any], config: IdentityConfig) -> Issuer:
    iss = claims.get("iss")
    issuer = config.jwt.issuers.get(iss) if config.jwt and isinstance(iss, str) else None
    if issuer is None:
        raise AuthnError("unknown_issuer", "jwt_authn payload issuer is not trusted")
    return issuer
