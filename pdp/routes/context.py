"""The Cedar context of a gateway request: its sources (method, path, claims, ...) and values."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pdp.authn.principal import claim_value
from pdp.routes.paths import NormalizedPath

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
