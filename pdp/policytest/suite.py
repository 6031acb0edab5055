"""Parses one suite file into Cedar cases, expanded matrices and HTTP cases."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from pdp.errors import Problem, SuiteError, YamlError
from pdp.policytest.cases import ActionResolver, Context, read_case
from pdp.policytest.fixtures import Scope, read_context, read_entity_list, read_fixtures
from pdp.policytest.http_cases import read_http_case
from pdp.policytest.matrix import read_matrix
from pdp.policytest.model import CedarCase, HttpCase, Location, Suite
from pdp.policytest.values import SuiteReader
from pdp.yamlsrc import YMap, kind, load

_Case = TypeVar("_Case", CedarCase, HttpCase)

SUITE_KEYS = (
    "name",
    "description",
    "principals",
    "resources",
    "contexts",
    "identities",
    "entities",
    "context",
    "cases",
    "matrices",
    "http",
)


def parse_suite(
    path: str,
    text: str,
    shared: Scope,
    resolve_action: ActionResolver,
    policies: Mapping[str, str],
) -> Suite:
    """Parse the suite at `path` (relative to the bundle); raise SuiteError listing problems."""
    try:
        doc = load(path, text)
    except YamlError as exc:
        raise SuiteError(exc.problems) from None
    reader = SuiteReader(path)
    if doc is None:
        raise SuiteError([Problem(path, "empty suite: expected cases, matrices or http", 1)])
    if not isinstance(doc, YMap):
        raise SuiteError([Problem(path, f"a suite must be a YAML mapping, not {kind(doc)}", 1)])
    reader.known_keys(doc, SUITE_KEYS, "a suite")
    name = path
    if "name" in doc:
        name = reader.text(doc, "name", "name") or path
    scope = Scope(parent=shared)
    read_fixtures(reader, doc, scope, entity_sets=False)
    suite_entities: list[dict[str, Any]] = []
    if "entities" in doc:
        suite_entities = read_entity_list(reader, doc, "entities", scope, "suite entities") or []
    suite_context = read_context(reader, doc, "context", scope) if "context" in doc else None
    ctx = Context(scope, resolve_action, policies, tuple(suite_entities), suite_context)

    cases: list[CedarCase] = []
    http: list[HttpCase] = []
    taken: set[str] = set()
    if "cases" in doc:
        for index in range(len(reader.sequence(doc, "cases", "cases") or [])):
            case = read_case(reader, doc["cases"], index, name, ctx)
            if case is not None:
                cases.append(_numbered(case, doc["cases"][index], taken))
    if "matrices" in doc:
        for index in range(len(reader.sequence(doc, "matrices", "matrices") or [])):
            cases.extend(read_matrix(reader, doc["matrices"], index, name, ctx))
    if "http" in doc:
        for index in range(len(reader.sequence(doc, "http", "http") or [])):
            http_case = read_http_case(reader, doc["http"], index, name, ctx)
            if http_case is not None:
                http.append(_numbered(http_case, doc["http"][index], taken))
    if not any(key in doc for key in ("cases", "matrices", "http")):
        reader.error(doc, None, "a suite needs at least one of cases, matrices or http")
    _check_unique_names(reader, cases, http)
    if reader.problems:
        raise SuiteError(reader.problems)
    written = doc.get("description")
    description = written if isinstance(written, str) else ""
    return Suite(name, path, description, tuple(cases), tuple(http))


def _numbered(case: _Case, item: Any, taken: set[str]) -> _Case:
    """A case left unnamed gets `#2`, `#3`... when its generated name is already taken."""
    name = case.name
    if not (isinstance(item, dict) and item.get("name")):
        number = 2
        while name in taken:
            name, number = f"{case.name} #{number}", number + 1
    taken.add(name)
    return case if name == case.name else dataclasses.replace(case, name=name)


def _check_unique_names(reader: SuiteReader, cases: list[CedarCase], http: list[HttpCase]) -> None:
    seen: dict[str, Location] = {}
    every: list[CedarCase | HttpCase] = [*cases, *http]
    for case in every:
        earlier = seen.setdefault(case.name, case.where)
        if earlier is not case.where:
            reader.problems.append(
                Problem(
                    case.where.file,
                    f"duplicate case name {case.name!r} in this suite (first at {earlier})",
                    case.where.line,
                )
            )
