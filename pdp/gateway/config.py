"""routes.yaml, parsed and checked at bundle load into one immutable GatewayConfig."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import cedarpy

from pdp.authn.apikeys import ApiKey, ApiKeyConfig, parse_hash
from pdp.authn.identity import IdentityConfig, JwtAuthnMetadata
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
from pdp.bundle.loader import ROUTES, BundleSource
from pdp.errors import Problem, YamlError
from pdp.gateway.routes import (
    HTTP_METHODS,
    IdTemplate,
    Route,
    context_source_type,
    parse_template,
)
from pdp.gateway.schemacheck import check_schema
from pdp.model import EntityRef, parse_action
from pdp.yamlsrc import Reader, Section, load

TOP_KEYS = ("identity", "context", "responses", "routes")
DEFAULT_CONTEXT = (
    ("method", "method"),
    ("path", "path"),
    ("source_ip", "source_ip"),
    ("scopes", "scopes"),
    ("peer", "peer"),
)
_HEADER_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
# Headers that make some frameworks treat a request as another method (a GET read as a
# DELETE upstream, after pdp decided it as a read): removed on allow unless a bundle opts out.
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-method-override", "x-http-method")


@dataclass(frozen=True, slots=True)
class ResponseConfig:
    """Status of unknown routes and the names of the headers sent upstream on allow."""

    unknown_route_status: int = 403
    principal_header: str = "x-pdp-principal"
    decision_id_header: str = "x-pdp-decision-id"
    strip_headers: tuple[str, ...] = ()  # client headers removed before upstream on allow
    strip_method_overrides: bool = True  # also remove METHOD_OVERRIDE_HEADERS on allow
    remove_headers: tuple[str, ...] = field(init=False)  # all headers removed on allow

    def __post_init__(self) -> None:
        extra = METHOD_OVERRIDE_HEADERS if self.strip_method_overrides else ()
        object.__setattr__(self, "remove_headers", tuple(dict.fromkeys(self.strip_headers + extra)))


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


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """A bundle's compiled routes.yaml: identity sources, route table, responses."""

    identity: IdentityConfig
    routes: tuple[Route, ...]
    responses: ResponseConfig
    context: tuple[tuple[str, str], ...]  # the top-level context spec (for overrides)
    known_entities: frozenset[tuple[str, str]]  # (type, id) of the bundle's entities

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


def compile_gateway(
    source: BundleSource, schema: cedarpy.Schema | None, problems: list[Problem]
) -> GatewayConfig | None:
    """Parse and check `source.routes`; every problem goes to `problems` as routes.yaml:LINE."""
    assert source.routes is not None
    start = len(problems)
    try:
        document = load(ROUTES, source.routes.text)
    except YamlError as exc:
        problems.extend(exc.problems)
        return None
    top = Reader(ROUTES, problems).section(document, "", 1)
    if not top.ok:
        return None
    top.only(*TOP_KEYS)
    identity = _identity(top.child("identity"), source.files)
    context = _context(top.child("context"), DEFAULT_CONTEXT if not top.has("context") else ())
    routes = _routes(top, context)
    responses = _responses(top.child("responses"))
    if len(problems) > start:
        return None
    if schema is not None:
        types = check_schema(schema, identity, routes, problems)
        routes = tuple(replace(r, principal_types=types.get(r.name)) for r in routes)
    if len(problems) > start:
        return None
    return GatewayConfig(identity, routes, responses, context, _entity_uids(source))


def _identity(section: Section, files: dict[str, str]) -> IdentityConfig:
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
                    ROUTES,
                    f"{later.label} and {earlier.label} (line {earlier.line}) both mint "
                    f"principals of type {later.type} and can mint the same ids, so one could "
                    f"act as the other's {later.type} (its entity and roles included): map one "
                    f"to a principal type of its own, {namespace}or accept that risk with "
                    f"{accept}",
                    later.line,
                )
            )


def _jwt(section: Section, files: dict[str, str], minters: list[_Minter]) -> JwtConfig:
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


def _issuer(node: Section, files: dict[str, str]) -> Issuer | None:
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
    node: Section, algorithms: tuple[str, ...], files: dict[str, str]
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
    if header == "authorization" or not set(header) <= _HEADER_NAME:
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


def _context(node: Section, defaults: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """A `context:` mapping of attribute -> source; null drops an inherited attribute."""
    spec = dict(defaults)
    for key, source in node.node.items():
        if source is None:
            spec.pop(str(key), None)
            continue
        if not isinstance(source, str) or context_source_type(source) is None:
            node.error(f"{node.where}.{key}: unknown source {source!r} ({_SOURCES_HINT})", key)
            continue
        spec[str(key)] = source
    return tuple(spec.items())


_SOURCES_HINT = (
    "one of method, path, host, scheme, source_ip, scopes, peer, identity, query, "
    "query.NAME, param.NAME, claim.NAME"
)


def _routes(top: Section, context: tuple[tuple[str, str], ...]) -> tuple[Route, ...]:
    routes: list[Route] = []
    first_line: dict[str, int | None] = {}
    for index, (item, line) in enumerate(top.items("routes", required=True)):
        node = top.section(item, f"routes[{index}]", line)
        if not node.ok:
            continue
        route = _route(node, context)
        if route is None:
            continue
        if route.name in first_line:
            node.error(f"route name {route.name!r} is used twice", "name")
        first_line[route.name] = line
        _check_shadowed(node, route, routes)
        routes.append(route)
    return tuple(routes)


def _route(node: Section, inherited: tuple[tuple[str, str], ...]) -> Route | None:
    node.only("name", "method", "path", "action", "resource", "context")
    template = node.parsed("path", parse_template, required=True)
    methods = _methods(node)
    action = node.parsed("action", parse_action, required=True)
    resource = node.child("resource")
    resource.only("type", "id")
    resource_type = resource.string("type", required=True)
    resource_id = resource.string("id", required=True)
    if not node.has("resource"):
        node.error(f"{node.where}.resource is required (type and id)")
    context = _context(node.child("context"), inherited)
    if template is None or action is None or resource_type is None or resource_id is None:
        return None
    id_template = IdTemplate(resource_id)
    bound = set(template.params)
    for param in id_template.params:
        if param not in bound:
            resource.error(f"resource id uses {{{param}}}, which the path does not bind", "id")
    for key, source in context:
        if source.startswith("param.") and source[6:] not in bound:
            node.error(f"context {key}: {source} is not a parameter of the path", "context")
    method_text = "*" if methods is None else ",".join(sorted(methods))
    return Route(
        name=node.string("name") or f"{method_text} {template.text}",
        line=node.line,
        methods=methods,
        template=template,
        action=action,
        resource_type=resource_type,
        resource_id=id_template,
        context=context,
    )


def _methods(node: Section) -> frozenset[str] | None:
    names = node.strings("method", required=True)
    if names == ["*"]:
        return None
    for name in names:
        if name not in HTTP_METHODS:
            node.error(f"{node.where}.method: {name!r} is not an HTTP method in capitals", "method")
    return frozenset(names)


def _check_shadowed(node: Section, route: Route, earlier: list[Route]) -> None:
    """A route no request can reach (an earlier one matches all its requests) is an error."""
    for other in earlier:
        same_shape = other.template.shape == route.template.shape
        unconstrained = all(s.pattern is None for s in other.template.segments)
        methods_covered = other.methods is None or (
            route.methods is not None and route.methods <= other.methods
        )
        if same_shape and unconstrained and methods_covered:
            node.error(
                f"route {route.name!r} is unreachable: route {other.name!r} (line "
                f"{other.line}) matches every request it would",
                "path",
            )
            return


def _responses(node: Section) -> ResponseConfig:
    node.only(
        "unknown_route_status",
        "principal_header",
        "decision_id_header",
        "strip_headers",
        "strip_method_overrides",
    )
    defaults = ResponseConfig()
    status = int(node.number("unknown_route_status", defaults.unknown_route_status, 400, 499))
    headers = {}
    for key in ("principal_header", "decision_id_header"):
        value = (node.string(key, getattr(defaults, key)) or getattr(defaults, key)).lower()
        if not set(value) <= _HEADER_NAME:
            node.error(f"{node.where}.{key} must be a plain header name", key)
        headers[key] = value
    strip = tuple(h.lower() for h in node.strings("strip_headers"))
    for name in strip:
        if not set(name) <= _HEADER_NAME or name == "host":
            node.error(f"{node.where}.strip_headers: cannot strip {name!r}", "strip_headers")
        elif name in headers.values():
            node.error(
                f"{node.where}.strip_headers: {name!r} is set by pdp (and overwrites the "
                "client's); Envoy removes after setting, so stripping it would drop pdp's value",
                "strip_headers",
            )
    overrides = node.boolean("strip_method_overrides", defaults.strip_method_overrides)
    for key, value in headers.items():
        if overrides and value in METHOD_OVERRIDE_HEADERS:
            node.error(
                f"{node.where}.{key}: {value!r} is a method override header, which pdp removes "
                "on allow (set strip_method_overrides: false to keep those)",
                key,
            )
    return ResponseConfig(status, **headers, strip_headers=strip, strip_method_overrides=overrides)


def _entity_uids(source: BundleSource) -> frozenset[tuple[str, str]]:
    """The uids of the bundle's entities (already validated by the compiler)."""
    if source.entities is None:
        return frozenset()
    try:
        items = json.loads(source.entities.text)
    except (ValueError, RecursionError):  # the compiler reports the file; the bundle fails
        return frozenset()
    uids: set[tuple[str, str]] = set()
    for item in items if isinstance(items, list) else ():
        uid = item.get("uid", {}) if isinstance(item, dict) else {}
        uid = uid.get("__entity", uid) if isinstance(uid, dict) else {}
        if isinstance(uid, dict) and isinstance(uid.get("type"), str):
            uids.add((uid["type"], str(uid.get("id", ""))))
    return frozenset(uids)
