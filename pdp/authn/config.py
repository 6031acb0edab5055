"""The identity section of routes.yaml: JWT issuers, mTLS, API keys, jwt_authn, anonymous.

Parsed from a yamlsrc Section with the bundle's files at hand (JWKS files); every problem is
recorded, located, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pdp.authn.apikeys import ApiKey, ApiKeyConfig, parse_hash
from pdp.authn.jwks import ALGORITHMS, HMAC_ALGORITHMS, JwksUrl, KeySet, check_url, parse_jwks
from pdp.authn.jwt import (
    DEFAULT_CACHE_MAX_ENTRIES,
    DEFAULT_CACHE_TTL_SECONDS,
    DEFAULT_MAX_TOKEN_BYTES,
    Issuer,
    JwtConfig,
)
from pdp.authn.mtls import MtlsConfig
from pdp.authn.principal import AttributeClaim, ClaimTemplate, PrincipalMapping
from pdp.errors import Problem
from pdp.model import EntityRef
from pdp.yamlsrc import Section

HEADER_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")  # what a header name may hold


@dataclass(frozen=True, slots=True)
class JwtAuthnMetadata:
    """Where Envoy's `jwt_authn` filter puts the payload it verified (`payload_in_metadata`)."""

    namespace: str = "envoy.filters.http.jwt_authn"
    key: str = "jwt_payload"


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """The identity sources of a bundle's routes.yaml; each is off unless configured."""

    jwt: JwtConfig | None = None
    mtls: MtlsConfig | None = None
    api_keys: ApiKeyConfig | None = None
    jwt_authn: JwtAuthnMetadata | None = None
    anonymous: EntityRef | None = None

    @property
    def principal_types(self) -> tuple[str, ...]:
        """Every entity type a principal may have, in a stable order."""
        types: list[str] = []
        if self.jwt is not None:
            types += [i.principal.type for i in self.jwt.issuers.values()]
        if self.api_keys is not None:
            types += [k.principal.type for k in self.api_keys.keys]
        if self.mtls is not None:
            types.append(self.mtls.principal_type)
        if self.anonymous is not None:
            types.append(self.anonymous.type)
        return tuple(dict.fromkeys(types))

    @property
    def uses_transport_trust(self) -> bool:
        """True when an identity source relies on what Envoy asserts (peer or jwt_authn)."""
        return self.mtls is not None or self.jwt_authn is not None


@dataclass(frozen=True, slots=True)
class _Minter:
    """An identity source that derives principal ids from what a request presents (a JWT
    issuer, the mTLS peer), with the text all of its ids start and end with."""

    label: str
    type: str
    prefix: str
    suffix: str
    allowed: bool  # its allow_id_collisions
    opt_in: str  # where that is set, for the message
    line: int | None

    def overlaps(self, other: _Minter) -> bool:
        """Whether some id could come from both: neither their prefixes nor their suffixes
        tell them apart (a prefix of one is a prefix of the other, the same for suffixes)."""
        prefixes = self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)
        suffixes = self.suffix.endswith(other.suffix) or other.suffix.endswith(self.suffix)
        return prefixes and suffixes


def read_identity(section: Section, files: Mapping[str, str]) -> IdentityConfig:
    """The `identity:` section of routes.yaml; each problem is recorded by `section`."""
    section.only("jwt", "mtls", "api_keys", "jwt_authn", "anonymous")
    minters: list[_Minter] = []
    jwt_config = _jwt(section.child("jwt"), files, minters) if section.has("jwt") else None
    mtls = None
    if section.has("mtls"):
        node = section.child("mtls")
        node.only("principal_type", "trust_domains", "allow_id_collisions")
        mtls = MtlsConfig(
            node.string("principal_type", "Service") or "Service",
            tuple(node.strings("trust_domains")),
        )
        allowed = node.boolean("allow_id_collisions", False)
        opt_in = "mtls.allow_id_collisions"
        minters.append(_Minter("mtls", mtls.principal_type, "", "", allowed, opt_in, node.line))
    _check_collisions(minters, section)
    api_keys = _api_keys(section.child("api_keys")) if section.has("api_keys") else None
    jwt_authn = None
    if section.has("jwt_authn"):
        node = section.child("jwt_authn")
        node.only("namespace", "key")
        defaults = JwtAuthnMetadata()
        jwt_authn = JwtAuthnMetadata(
            node.string("namespace", defaults.namespace) or defaults.namespace,
            node.string("key", defaults.key) or defaults.key,
        )
        if jwt_config is None:
            node.error("identity.jwt_authn needs identity.jwt.issuers to map its claims")
    anonymous = section.parsed("anonymous", EntityRef.parse)
    return IdentityConfig(jwt_config, mtls, api_keys, jwt_authn, anonymous)


def _check_collisions(minters: list[_Minter], section: Section) -> None:
    """Two sources minting ids of one principal type must not be able to mint the same id,
    unless both accept it: else a token of one could stand for a principal of the other."""
    for index, later in enumerate(minters):
        for earlier in minters[:index]:
            if earlier.type != later.type or not earlier.overlaps(later):
                continue
            if earlier.allowed and later.allowed:
                continue
            if later.opt_in == earlier.opt_in:
                accept = f"{later.opt_in}: true on both"
            else:
                accept = f"{later.opt_in}: true and {earlier.opt_in}: true"
            namespace = (
                'give both ids of their own (principal.id, such as "{iss}|{sub}"), '
                if "mtls" not in (later.label, earlier.label)
                else ""
            )
            section.problems.append(
                Problem(
                    section.reader.path,
                    f"{later.label} and {earlier.label} (line {earlier.line}) both mint "
                    f"principals of type {later.type} and can mint the same ids, so one could "
                    f"act as the other's {later.type} (its entity and roles included): map one "
                    f"to a principal type of its own, {namespace}or accept that risk with "
                    f"{accept}",
                    later.line,
                )
            )


def _jwt(section: Section, files: Mapping[str, str], minters: list[_Minter]) -> JwtConfig:
    section.only("issuers", "max_token_bytes", "token_cache")
    max_bytes = int(section.number("max_token_bytes", DEFAULT_MAX_TOKEN_BYTES, 512, 1024 * 1024))
    cache = section.child("token_cache")
    cache.only("ttl_seconds", "max_entries")
    cache_ttl = cache.number("ttl_seconds", DEFAULT_CACHE_TTL_SECONDS, 0, 3600)
    cache_entries = int(cache.number("max_entries", DEFAULT_CACHE_MAX_ENTRIES, 0, 1_000_000))
    issuers: dict[str, Issuer] = {}
    for node, line in section.items("issuers", required=True):
        reader = section.section(node, "identity.jwt.issuers[]", line)
        issuer = _issuer(reader, files) if reader.ok else None
        if issuer is None:
            continue
        if issuer.issuer in issuers:
            reader.error(f"issuer {issuer.issuer!r} is listed twice", "issuer")
            continue
        issuers[issuer.issuer] = issuer
        mapping = issuer.principal
        prefix, suffix = mapping.id.bounds({"iss": issuer.issuer})  # iss is verified exactly
        minters.append(
            _Minter(
                f"issuer {issuer.issuer!r}",
                mapping.type,
                prefix,
                suffix,
                mapping.allow_id_collisions,
                "principal.allow_id_collisions",
                reader.line_of("principal"),
            )
        )
    return JwtConfig(issuers, max_bytes, cache_ttl, cache_entries)


def _issuer(node: Section, files: Mapping[str, str]) -> Issuer | None:
    node.only(
        "issuer",
        "audiences",
        "algorithms",
        "jwks",
        "leeway_seconds",
        "required_claims",
        "scopes_claim",
        "principal",
    )
    name = node.string("issuer", required=True)
    audiences = node.strings("audiences", required=True)
    algorithms = _algorithms(node)
    principal = _principal(node.child("principal")) if node.has("principal") else None
    if principal is None:
        node.error(f"{node.where}.principal is required (at least its type)")
    keys, url = _jwks(node.child("jwks"), algorithms, files) if node.has("jwks") else (None, None)
    if not node.has("jwks"):
        node.error(f"{node.where}.jwks is required (file or url)")
    if name is None or principal is None or not algorithms or not audiences:
        return None
    return Issuer(
        issuer=name,
        audiences=tuple(audiences),
        algorithms=algorithms,
        principal=principal,
        keys=keys,
        jwks_url=url,
        leeway_seconds=node.number("leeway_seconds", 30.0, 0, 300),
        required_claims=tuple(node.strings("required_claims") or ["exp"]),
        scopes_claim=node.string("scopes_claim", "scope") or "scope",
    )


def _algorithms(node: Section) -> tuple[str, ...]:
    names = node.strings("algorithms", required=True)
    for name in names:
        if name.lower() == "none":
            node.error("algorithm 'none' (unsigned tokens) is never allowed", "algorithms")
            return ()
        if name not in ALGORITHMS:
            known = ", ".join(ALGORITHMS)
            node.error(f"unknown algorithm {name!r} (known: {known})", "algorithms")
            return ()
    hmac = [a for a in names if a in HMAC_ALGORITHMS]
    if hmac and len(hmac) != len(names):
        node.error(
            "algorithms mixes HMAC (HS*) with asymmetric ones; a key must never be read both "
            "ways (algorithm confusion): use one issuer entry per kind",
            "algorithms",
        )
        return ()
    return tuple(dict.fromkeys(names))


def _jwks(
    node: Section, algorithms: tuple[str, ...], files: Mapping[str, str]
) -> tuple[KeySet | None, JwksUrl | None]:
    node.only("file", "url", "cache_seconds", "min_refresh_seconds", "timeout_seconds")
    if node.has("file") == node.has("url"):
        node.error(f"{node.where} needs exactly one of file or url")
        return None, None
    path = node.string("file")
    url = node.parsed("url", check_url)
    if not algorithms:
        return None, None
    if path is not None:
        if path not in files:
            node.error(f"{node.where}.file: {path!r} is not a file of the bundle", "file")
            return None, None
        try:
            keys = parse_jwks(files[path], algorithms)
        except ValueError as exc:
            node.error(f"{node.where}.file: {path}: {exc}", "file")
            return None, None
        if not len(keys):
            allowed = ", ".join(algorithms)
            node.error(f"{node.where}.file: no key in {path} can verify {allowed}", "file")
        return keys, None
    if url is None:
        return None, None
    if any(a in HMAC_ALGORITHMS for a in algorithms):
        node.error("HMAC secrets are never fetched from a URL; use a jwks file", "url")
        return None, None
    spec = JwksUrl(
        url=url,
        algorithms=algorithms,
        cache_seconds=node.number("cache_seconds", 300.0, 1, 86400),
        min_refresh_seconds=node.number("min_refresh_seconds", 30.0, 0.1, 3600),
        timeout_seconds=node.number("timeout_seconds", 2.0, 0.1, 30),
    )
    return None, spec


def _principal(node: Section) -> PrincipalMapping | None:
    node.only(
        "type", "id", "id_claim", "roles_claim", "role_type", "attributes", "allow_id_collisions"
    )
    entity_type = node.string("type", required=True)
    if node.has("id") and node.has("id_claim"):
        node.error(f"{node.where}: set id (a template) or id_claim (one claim), not both", "id")
    template: ClaimTemplate | None
    if node.has("id"):
        template = node.parsed("id", _claim_template)
    else:
        template = ClaimTemplate.claim(node.string("id_claim", "sub") or "sub")
    roles_claim = node.string("roles_claim")
    role_type = node.string("role_type")
    if (roles_claim is None) != (role_type is None):
        node.error(f"{node.where}: roles_claim and role_type go together")
    attributes: list[AttributeClaim] = []
    attrs = node.child("attributes")
    for name, value in attrs.node.items():
        if isinstance(value, str) and value:
            attributes.append(AttributeClaim(str(name), value))
            continue
        spec = node.section(value, f"{attrs.where}.{name}", attrs.line_of(name))
        spec.only("claim", "entity")
        claim = spec.string("claim", required=True)
        if claim is not None:
            attributes.append(AttributeClaim(str(name), claim, spec.string("entity")))
    allow_collisions = node.boolean("allow_id_collisions", False)
    if entity_type is None or template is None:
        return None
    return PrincipalMapping(
        type=entity_type,
        id=template,
        roles_claim=roles_claim,
        role_type=role_type,
        attributes=tuple(attributes),
        allow_id_collisions=allow_collisions,
    )


def _claim_template(value: Any) -> ClaimTemplate:
    if not isinstance(value, str):
        raise ValueError('must be a template over claims, like "{sub}" or "{iss}|{sub}"')
    return ClaimTemplate.parse(value)


def _api_keys(node: Section) -> ApiKeyConfig:
    node.only("header", "keys")
    header = (node.string("header", "x-api-key") or "x-api-key").lower()
    if header == "authorization" or not set(header) <= HEADER_NAME:
        node.error(f"{node.where}.header must be a plain header name other than authorization")
    keys: list[ApiKey] = []
    names: set[str] = set()
    for item, line in node.items("keys", required=True):
        key = node.section(item, "identity.api_keys.keys[]", line)
        key.only("name", "hash", "principal")
        name = key.string("name", required=True)
        digest = key.parsed("hash", parse_hash, required=True)
        principal = key.parsed("principal", EntityRef.parse, required=True)
        if name in names:
            key.error(f"API key name {name!r} is used twice", "name")
        if name and digest is not None and principal is not None:
            names.add(name)
            keys.append(ApiKey(name, digest, principal))
    return ApiKeyConfig(header, tuple(keys))
