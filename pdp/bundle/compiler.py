"""Compiles a read bundle into cedarpy handles: the one immutable snapshot decisions use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import cedarpy

from pdp.bundle.diagnose import (
    duplicate_entities,
    locate_entity_errors,
    locate_schema_error,
    parser_hazard_problem,
)
from pdp.bundle.index import EntityGraph, PolicyIndex, build_index
from pdp.bundle.links import apply_links, validate_links
from pdp.bundle.loader import PROTECTION, ROUTES, BundleSource, SourceFile
from pdp.bundle.policies import (
    PolicyInfo,
    build_policy_set,
    by_positional_ids,
    check_duplicate_ids,
    collect_policies,
    validate_policies,
)
from pdp.bundle.protection import ProtectionConfig, compile_protection
from pdp.errors import BundleError, Problem
from pdp.model import Uid, uid_of
from pdp.routes.compile import compile_routes
from pdp.routes.spec import GatewayConfig


@dataclass(frozen=True, slots=True)
class CompiledBundle:
    """Everything a decision needs, pre-parsed once; immutable, swapped in whole."""

    name: str  # name and revision are the source's, copied: every decision reads them
    revision: str
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema | None
    entities: cedarpy.Entities
    policies: tuple[PolicyInfo, ...]
    by_internal_id: dict[str, PolicyInfo]
    entity_count: int  # len(entities) walks them all; the request path asks for it
    source: BundleSource
    graph: EntityGraph = field(repr=False, compare=False)
    index: PolicyIndex | None = field(default=None, repr=False, compare=False)
    gateway: GatewayConfig | None = field(default=None, repr=False, compare=False)  # routes.yaml
    protection: ProtectionConfig | None = field(default=None, repr=False, compare=False)

    @property
    def root(self) -> str:
        return self.source.root

    @property
    def validation(self) -> str:
        return self.source.manifest.validation

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return self.source.warnings

    @property
    def policy_count(self) -> int:
        return sum(1 for p in self.policies if p.kind == "static")

    @property
    def link_count(self) -> int:
        return sum(1 for p in self.policies if p.kind == "link")


def compile_bundle(source: BundleSource) -> CompiledBundle:
    """Parse, link, validate and compile `source`; raise BundleError with every problem found."""
    problems: list[Problem] = []
    policies = collect_policies(source.policies, problems)
    check_duplicate_ids(policies, problems)
    schema = _parse_schema(source.schema, problems)
    # Entities are checked even when a policy fails, so one run reports both; not without the
    # schema they are declared against, which would only add misleading errors.
    schema_ok = source.schema is None or schema is not None
    entities, uids = _parse_entities(source.entities, schema, problems) if schema_ok else (None, ())
    gateway = None
    if source.routes is not None and schema_ok:
        known = frozenset(uids)  # a principal among them is never sent along with a Check
        gateway = compile_routes(source.routes.text, ROUTES, source.files, schema, known, problems)
    protection = None
    if source.protection is not None:
        names = frozenset(r.name for r in gateway.routes) if gateway is not None else None
        if source.routes is not None and gateway is None:
            names = frozenset()  # routes.yaml has its own problems; do not repeat them
        protection = compile_protection(source.protection.text, PROTECTION, names, problems)
    if problems:
        raise BundleError(problems, source.warnings)

    strict_schema = schema if source.manifest.validation == "strict" else None
    policy_set, policies = build_policy_set(policies, source.policies, problems)
    links: list[PolicyInfo] = []
    if source.links is not None and policy_set is not None:
        first = len(problems)
        policy_set, links = apply_links(policy_set, source.links, policies, problems)
        check_duplicate_ids(policies + links, problems)
        problems[first:] = sorted(problems[first:], key=lambda p: (p.file, p.line or 0))
        if strict_schema is not None and not problems:
            validate_links(links, strict_schema, problems)
    if strict_schema is not None:
        validate_policies(source.policies, policies, strict_schema, problems)
    if problems or policy_set is None or entities is None:
        raise BundleError(problems, source.warnings)

    all_policies = tuple(policies + links)
    index, graph = build_index(policy_set, all_policies, entities)
    if by_positional_ids(policies):  # slices are built from the JSON form, which refused them
        index = None
    return CompiledBundle(
        name=source.name,
        revision=source.revision,
        policy_set=policy_set,
        schema=schema,
        entities=entities,
        policies=all_policies,
        by_internal_id={p.internal_id: p for p in all_policies},
        entity_count=len(entities),
        source=source,
        index=index,
        graph=graph,
        gateway=gateway,
        protection=protection,
    )


def _parse_schema(source: SourceFile | None, problems: list[Problem]) -> cedarpy.Schema | None:
    if source is None:
        return None
    if not source.path.endswith(".json"):  # JSON's own parser stops at 128 levels
        hazard = parser_hazard_problem(source, schema=True)
        if hazard is not None:
            problems.append(hazard)
            return None
    try:
        if source.path.endswith(".json"):
            return cedarpy.Schema.from_json_str(source.text)
        return cedarpy.Schema.from_str(source.text)
    except ValueError as exc:
        message, line, column = locate_schema_error(source, str(exc))
        problems.append(Problem(source.path, f"invalid schema: {message}", line, column))
        return None


def _parse_entities(
    source: SourceFile | None, schema: cedarpy.Schema | None, problems: list[Problem]
) -> tuple[cedarpy.Entities | None, tuple[Uid, ...]]:
    """The bundle's entities, and their uids; None when they do not parse."""
    if source is None:
        return cedarpy.Entities.from_json_str("[]", schema), ()
    try:
        entities = cedarpy.Entities.from_json_str(source.text, schema)
    except ValueError as exc:
        problems.extend(locate_entity_errors(source, schema, str(exc)))
        return None, ()
    items = json.loads(source.text)  # Cedar took it: a list of entities, each with its uid
    # cedarpy accepts identical duplicates; in a reviewed file a repeated uid is a mistake.
    duplicates = duplicate_entities(source, items)
    problems.extend(duplicates)
    if duplicates:
        return None, ()
    return entities, tuple(uid for item in items if (uid := uid_of(item.get("uid"))) is not None)
