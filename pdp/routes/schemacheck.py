"""Checks routes.yaml against the Cedar schema by validating small probe policies with cedarpy."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cedarpy

from pdp.authn.config import IdentityConfig
from pdp.errors import Problem
from pdp.routes.context import context_source_type
from pdp.routes.spec import Route

_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$")
_POLICY_ID = re.compile(r"policy(\d+)")
NOT_APPLICABLE = "unable to find an applicable action"
# The validation errors that mean something for a probe of each kind (others are side effects).
_MEANINGFUL = {
    "type": "unrecognized entity type",
    "attribute": "not found",
    "context_type": "unexpected type",
}
# What a context source's type check looks like in Cedar, by the type the source yields.
_TYPE_PROBES = {
    "String": '{value} like "*"',
    "ipaddr": "{value}.isIpv4() || true",
    "Set<String>": '{value}.contains("")',
}


@dataclass(frozen=True, slots=True)
class _Probe:
    """One generated policy and what its validation errors mean."""

    text: str
    kind: str  # "type", "attribute", "applies", "context", "context_type"
    line: int | None
    subject: str
    route: str | None = None
    principal_type: str | None = None


def check_schema(
    schema: cedarpy.Schema,
    identity: IdentityConfig,
    routes: Sequence[Route],
    path: str,
    problems: list[Problem],
) -> dict[str, frozenset[str]]:
    """Report what the schema does not allow, located in the routes file `path`; return each
    route's applicable principal types."""
    types = identity.principal_types
    for name in [*types, *_role_types(identity), *(r.resource_type for r in routes)]:
        if not _TYPE_NAME.match(name):
            problems.append(Problem(path, f"{name!r} is not a Cedar entity type name"))
    if any(not _TYPE_NAME.match(r.action.type) for r in routes) or problems:
        return {}
    probes = _identity_probes(identity) + _route_probes(routes, types)
    text = "\n".join(p.text for p in probes)
    result = cedarpy.validate_policies(text, schema)
    failed: dict[int, list[str]] = {}
    for invalid in result.errors:
        match = _POLICY_ID.fullmatch(invalid.policy_id)
        if match is None:
            problems.append(Problem(path, f"schema check: {invalid.error}"))
            continue
        failed.setdefault(int(match.group(1)), []).append(invalid.error)
    applicable: dict[str, set[str]] = {r.name: set() for r in routes}
    reported: set[tuple[int | None, str]] = set()

    def report(line: int | None, message: str) -> None:
        if (line, message) not in reported:
            reported.add((line, message))
            problems.append(Problem(path, message, line))

    for index, probe in enumerate(probes):
        errors = failed.get(index, [])
        if probe.kind == "applies":
            if not errors:
                applicable[probe.route or ""].add(probe.principal_type or "")
            for error in errors:
                if NOT_APPLICABLE not in error:
                    report(probe.line, f"route {probe.route!r}: {_tail(error)}")
        elif probe.kind == "context":
            if any("not found" in e for e in errors):
                report(probe.line, f"route {probe.route!r}: {probe.subject}")
        else:
            needle = _MEANINGFUL[probe.kind]
            for error in errors:
                if needle in error:
                    report(probe.line, f"{probe.subject}: {_tail(error)}")
    for route in routes:
        if not applicable[route.name] and types:
            report(
                route.line,
                f"route {route.name!r}: the schema lets none of the principal types "
                f"({', '.join(types)}) perform {route.action} on {route.resource_type}",
            )
    return {name: frozenset(found) for name, found in applicable.items()}


def _role_types(identity: IdentityConfig) -> list[str]:
    if identity.jwt is None:
        return []
    return [i.principal.role_type for i in identity.jwt.issuers.values() if i.principal.role_type]


def _identity_probes(identity: IdentityConfig) -> list[_Probe]:
    probes = [
        _Probe(f"permit(principal is {t}, action, resource);", "type", None, f"principal type {t}")
        for t in identity.principal_types
    ]
    if identity.jwt is None:
        return probes
    for issuer in identity.jwt.issuers.values():
        mapping = issuer.principal
        if mapping.role_type:
            probes.append(
                _Probe(
                    f'permit(principal in {mapping.role_type}::"probe", action, resource);',
                    "type",
                    None,
                    f"issuer {issuer.issuer}: role_type {mapping.role_type}",
                )
            )
        for attribute in mapping.attributes:
            access = f"principal[{json.dumps(attribute.name)}]"
            probes.append(
                _Probe(
                    f"permit(principal is {mapping.type}, action, resource) "
                    f"when {{ {access} == {access} }};",
                    "attribute",
                    None,
                    f"issuer {issuer.issuer}: attribute {attribute.name!r} is not declared on "
                    f"{mapping.type}",
                )
            )
    return probes


def _route_probes(routes: Sequence[Route], types: Sequence[str]) -> list[_Probe]:
    probes: list[_Probe] = []
    for route in routes:
        scope = f"action == {route.action}, resource is {route.resource_type}"
        for principal_type in types:
            probes.append(
                _Probe(
                    f"permit(principal is {principal_type}, {scope});",
                    "applies",
                    route.line,
                    "",
                    route.name,
                    principal_type,
                )
            )
        head = f"permit(principal, {scope})"
        for key, source in route.context:
            access = f"context[{json.dumps(key)}]"
            probes.append(
                _Probe(
                    f"{head} when {{ {access} == {access} }};",
                    "context",
                    route.line,
                    f"context attribute {key!r} ({source}) is not in the context of "
                    f"{route.action}; declare it in the schema or drop it from `context:`",
                    route.name,
                )
            )
            probe = _TYPE_PROBES.get(context_source_type(source) or "")
            if probe is not None:
                condition = f"context has {json.dumps(key)} && " + probe.format(value=access)
                probes.append(
                    _Probe(
                        f"{head} when {{ {condition} }};",
                        "context_type",
                        route.line,
                        f"route {route.name!r}: context attribute {key!r} ({source}) has the "
                        f"wrong type for {route.action}",
                        route.name,
                    )
                )
    return probes


def _tail(error: str) -> str:
    """A validation error without its `for policy `policyN`, ` prefix."""
    return re.sub(r"^for policy `[^`]*`, ", "", error)
