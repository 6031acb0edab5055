"""routes.yaml, parsed and checked at bundle load into one immutable GatewayConfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import cedarpy

from pdp.authn.config import HEADER_NAME, read_identity
from pdp.errors import Problem, YamlError
from pdp.model import Uid, parse_action
from pdp.routes.context import context_source_type
from pdp.routes.schemacheck import check_schema
from pdp.routes.spec import (
    HTTP_METHODS,
    METHOD_OVERRIDE_HEADERS,
    GatewayConfig,
    IdTemplate,
    ResponseConfig,
    Route,
    parse_template,
)
from pdp.yamlsrc import Reader, Section, load

TOP_KEYS = ("identity", "context", "responses", "routes", "shadow")
DEFAULT_CONTEXT = (
    ("method", "method"),
    ("path", "path"),
    ("source_ip", "source_ip"),
    ("scopes", "scopes"),
    ("peer", "peer"),
)


def compile_routes(
    text: str,
    path: str,
    files: Mapping[str, str],
    schema: cedarpy.Schema | None,
    known_uids: frozenset[Uid],
    problems: list[Problem],
) -> GatewayConfig | None:
    """Parse and check routes.yaml `text` (the file `path`, beside the bundle's `files`), against
    `schema` when there is one; every problem goes to `problems`, located as `path:LINE`.

    `known_uids` are the bundle's entities: a principal among them is not sent along."""
    start = len(problems)
    try:
        document = load(path, text)
    except YamlError as exc:
        problems.extend(exc.problems)
        return None
    top = Reader(path, problems).section(document, "", 1)
    if not top.ok:
        return None
    top.only(*TOP_KEYS)
    identity = read_identity(top.child("identity"), files)
    context = _context(top.child("context"), DEFAULT_CONTEXT if not top.has("context") else ())
    routes = _routes(top, context)
    responses = _responses(top.child("responses"))
    shadow_routes = _shadow_routes(top, routes)
    if len(problems) > start:
        return None
    if schema is not None:
        types = check_schema(schema, identity, routes, path, problems)
        routes = tuple(replace(r, principal_types=types.get(r.name)) for r in routes)
    if len(problems) > start:
        return None
    return GatewayConfig(identity, routes, responses, context, known_uids, shadow_routes)


def _shadow_routes(top: Section, routes: tuple[Route, ...]) -> frozenset[str] | None:
    """`shadow: {routes: [NAME, ...]}`: the routes `pdp serve --shadow` evaluates again."""
    if not top.has("shadow"):
        return None
    node = top.child("shadow")
    node.only("routes")
    names = node.strings("routes", required=True)
    known = {r.name for r in routes}
    for name in names:
        if name not in known:
            node.error(f"shadow.routes: no route is named {name!r}", "routes")
    return frozenset(names)


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
    node.only("name", "method", "path", "action", "resource", "context", "dry_run")
    dry_run = node.boolean("dry_run", False)
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
        dry_run=dry_run,
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
        if not set(value) <= HEADER_NAME:
            node.error(f"{node.where}.{key} must be a plain header name", key)
        headers[key] = value
    strip = tuple(h.lower() for h in node.strings("strip_headers"))
    for name in strip:
        if not set(name) <= HEADER_NAME or name == "host":
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
