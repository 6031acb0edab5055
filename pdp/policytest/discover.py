"""Finds a bundle's fixture and suite files under `tests/` and reads them into a TestPlan."""

from __future__ import annotations

from pathlib import PurePosixPath

from pdp.bundle.compiler import CompiledBundle
from pdp.bundle.loader import SourceFile
from pdp.errors import Problem, SuiteError, YamlError
from pdp.policytest.catalog import ActionCatalog, action_catalog
from pdp.policytest.fixtures import FIXTURE_KEYS, Scope, read_fixtures
from pdp.policytest.model import Suite, TestPlan
from pdp.policytest.suite import parse_suite
from pdp.policytest.values import SuiteReader
from pdp.yamlsrc import YMap, kind, load

FIXTURE_DIR = "fixtures"
FIXTURE_NAMES = ("fixtures.yaml", "fixtures.yml")


def is_fixture_file(path: str) -> bool:
    """`tests/**/fixtures/*.yaml` and `tests/**/fixtures.yaml` hold fixtures; the rest suites."""
    parts = PurePosixPath(path).parts
    return parts[-1] in FIXTURE_NAMES or FIXTURE_DIR in parts[1:-1]


def load_plan(bundle: CompiledBundle, catalog: ActionCatalog | None = None) -> TestPlan:
    """Read every fixture and suite file of `bundle`; raise SuiteError listing every problem."""
    files = sorted(bundle.source.tests, key=lambda f: f.path)
    return read_plan(files, bundle, catalog or action_catalog(bundle))


def read_plan(files: list[SourceFile], bundle: CompiledBundle, catalog: ActionCatalog) -> TestPlan:
    """Fixtures first (shared by every suite), then the suites, in path order."""
    problems: list[Problem] = []
    shared = Scope()
    fixture_files = [f for f in files if is_fixture_file(f.path)]
    for source in fixture_files:
        problems.extend(_read_fixture_file(source, shared))
    policies = {p.id: p.kind for p in bundle.policies}
    suites: list[Suite] = []
    for source in files:
        if is_fixture_file(source.path):
            continue
        try:
            suites.append(parse_suite(source.path, source.text, shared, catalog.resolve, policies))
        except SuiteError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SuiteError(sorted(problems, key=lambda p: (p.file, p.line or 0)))
    notes = (catalog.note,) if catalog.note else ()
    return TestPlan(tuple(suites), tuple(f.path for f in fixture_files), notes)


def _read_fixture_file(source: SourceFile, shared: Scope) -> list[Problem]:
    try:
        doc = load(source.path, source.text)
    except YamlError as exc:
        return exc.problems
    if doc is None:
        return []
    reader = SuiteReader(source.path)
    if not isinstance(doc, YMap):
        return [Problem(source.path, f"a fixture file must be a YAML mapping, not {kind(doc)}", 1)]
    reader.known_keys(doc, FIXTURE_KEYS, "a fixture file")
    read_fixtures(reader, doc, shared, entity_sets=True)
    return reader.problems
