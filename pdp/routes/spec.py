"""What routes.yaml compiles to: the route table (method + path template -> Cedar action and
resource), the identity sources and the responses, as one immutable GatewayConfig."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pdp.authn.config import IdentityConfig
from pdp.model import EntityRef
from pdp.routes.paths import NormalizedPath

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::(.+))?\}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)


@dataclass(frozen=True, slots=True)
class Segment:
    """One path template segment: a literal, or a parameter with an optional full-match regex."""

    literal: str | None = None
    param: str | None = None
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """`/api/users/{userId}/orders`: literal segments match exactly (case-sensitive)."""

    text: str
    segments: tuple[Segment, ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(s.param for s in self.segments if s.param)

    @property
    def shape(self) -> tuple[str | None, ...]:
        """Literals, with None for every parameter: equal shapes match the same paths."""
        return tuple(None if s.param else s.literal for s in self.segments)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for part, value in zip(self.segments, segments, strict=True):
            if part.param is None:
                if value != part.literal:
                    return None
            elif part.pattern is not None and not part.pattern.fullmatch(value):
                return None
            else:
                params[part.param] = value
        return params


def parse_template(text: str) -> PathTemplate:
    """Parse a path template; ValueError names what is wrong."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise ValueError("must start with '/'")
    segments: list[Segment] = []
    seen: set[str] = set()
    for raw in text.strip("/").split("/") if text != "/" else []:
        if raw in ("", ".", ".."):
            raise ValueError(f"empty, '.' or '..' segment in {text!r}")
        match = _PARAM.match(raw)
        if match is None:
            if any(c in raw for c in "{}%;\\?#"):
                raise ValueError(f"segment {raw!r}: a parameter is a whole segment like {{id}}")
            segments.append(Segment(literal=raw))
            continue
        name, regex = match.groups()
        if name in seen:
            raise ValueError(f"parameter {{{name}}} appears twice")
        seen.add(name)
        try:
            pattern = re.compile(regex) if regex else None
        except re.error as exc:
            raise ValueError(f"parameter {{{name}}}: invalid regex: {exc}") from None
        segments.append(Segment(param=name, pattern=pattern))
    return PathTemplate(text, tuple(segments))


@dataclass(frozen=True, slots=True)
class IdTemplate:
    """An entity id with `{param}` placeholders (`{orderId}`, `order-{orderId}`, `catalog`)."""

    text: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.text))

    def render(self, params: Mapping[str, str]) -> str:
        """The id with every placeholder bound; KeyError names an unbound parameter."""
        text = self.text
        # The usual `{param}` without a regex substitution (parameter names are identifiers).
        if text[:1] == "{" and text[-1:] == "}" and text[1:-1] in params:
            return params[text[1:-1]]
        return _PLACEHOLDER.sub(lambda m: params[m.group(1)], text)


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the route table, in table order."""

    name: str
    line: int | None
    methods: frozenset[str] | None  # None: any method
    template: PathTemplate
    action: EntityRef
    resource_type: str
    resource_id: IdTemplate
    context: tuple[tuple[str, str], ...]  # (context attribute, source)
    principal_types: frozenset[str] | None = None  # those the schema allows; None: unchecked
    dry_run: bool = False  # answer allow whatever the policy says; log the real decision

    def resource(self, params: Mapping[str, str]) -> EntityRef:
        return EntityRef(self.resource_type, self.resource_id.render(params))


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The first route matching a request, with its bound path parameters."""

    route: Route
    params: Mapping[str, str]


def match_route(routes: Sequence[Route], method: str, path: NormalizedPath) -> RouteMatch | None:
    """The first route whose method and path template match; None: an unknown endpoint."""
    for route in routes:
        if route.methods is not None and method not in route.methods:
            continue
        params = route.template.match(path.segments)
        if params is not None:
            return RouteMatch(route, params)
    return None


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
class GatewayConfig:
    """A bundle's compiled routes.yaml: identity sources, route table, responses."""

    identity: IdentityConfig
    routes: tuple[Route, ...]
    responses: ResponseConfig
    context: tuple[tuple[str, str], ...]  # the top-level context spec (for overrides)
    known_entities: frozenset[tuple[str, str]]  # (type, id) of the bundle's entities
    shadow_routes: frozenset[str] | None = None  # `shadow: {routes: [...]}`; None: every route

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)
