"""The route table: method + path template -> Cedar action, resource and context."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pdp.authn.principal import claim_value
from pdp.gateway.paths import NormalizedPath
from pdp.model import EntityRef

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::(.+))?\}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)

# Context sources: name -> Cedar type (for the schema check). Prefixed ones take a name.
CONTEXT_SOURCES = {
    "method": "String",
    "path": "String",
    "host": "String",
    "scheme": "String",
    "source_ip": "ipaddr",
    "scopes": "Set<String>",
    "peer": "String",
    "identity": "String",
    "query": "Record",
}
CONTEXT_PREFIXES = {"query.": "String", "param.": "String", "claim.": "Any"}


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


def context_source_type(source: str) -> str | None:
    """The Cedar type a context source yields, or None when `source` is not one."""
    if source in CONTEXT_SOURCES:
        return CONTEXT_SOURCES[source]
    for prefix, kind in CONTEXT_PREFIXES.items():
        if source.startswith(prefix) and len(source) > len(prefix):
            return kind
    return None


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything a context source can read; only verified values for identity-derived ones."""

    method: str
    path: NormalizedPath
    host: str = ""
    scheme: str = ""
    source_ip: str = ""
    peer: str | None = None
    scopes: tuple[str, ...] | None = None
    identity: str = "none"
    claims: Mapping[str, Any] | None = None
    params: Mapping[str, str] | None = None


def build_context(spec: Sequence[tuple[str, str]], facts: RequestFacts) -> dict[str, Any]:
    """The Cedar context (Cedar JSON values); a source without a value leaves its key out."""
    context: dict[str, Any] = {}
    for key, source in spec:
        value = _source_value(source, facts)
        if value is not None:
            context[key] = value
    return context


_SIMPLE_SOURCES: dict[str, Callable[[RequestFacts], Any]] = {
    "method": lambda facts: facts.method,
    "path": lambda facts: facts.path.path,
    "host": lambda facts: facts.host or None,
    "scheme": lambda facts: facts.scheme or None,
    "peer": lambda facts: facts.peer,
    "identity": lambda facts: facts.identity,
}


def _source_value(source: str, facts: RequestFacts) -> Any:
    simple = _SIMPLE_SOURCES.get(source)
    if simple is not None:
        return simple(facts)
    if source == "source_ip":
        return {"__extn": {"fn": "ip", "arg": facts.source_ip}} if facts.source_ip else None
    if source == "scopes":
        return list(facts.scopes) if facts.scopes is not None else None
    if source == "query":  # the first value of each name; `__` keys would read as Cedar escapes
        return {k: v for k, v in reversed(facts.path.query) if not k.startswith("__")}
    prefix, _, name = source.partition(".")
    if prefix == "query":
        return facts.path.query_value(name)
    if prefix == "param":
        return (facts.params or {}).get(name)
    if prefix == "claim" and facts.claims is not None:
        return _claim_as_cedar(claim_value(facts.claims, name))
    return None


def _claim_as_cedar(value: Any) -> Any:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, list):
        items = [_claim_as_cedar(v) for v in value]
        return [v for v in items if v is not None]
    if isinstance(value, Mapping):
        record = {
            k: _claim_as_cedar(v)
            for k, v in value.items()
            if isinstance(k, str) and not k.startswith("__")
        }
        return {k: v for k, v in record.items() if v is not None}
    return None
