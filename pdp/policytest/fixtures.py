"""Named fixtures (entities, contexts, entity sets, identities) and the scopes that hold them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

from pdp.errors import Problem
from pdp.model import EntityRef
from pdp.policytest.model import Identity, Location
from pdp.policytest.values import NAME, SuiteReader, json_value_problem
from pdp.yamlsrc import YMap, kind, line_of, plain

FIXTURE_KEYS = ("principals", "resources", "contexts", "identities", "entities")
IDENTITY_KEYS = ("claims", "spiffe")


@dataclass(frozen=True, slots=True)
class EntityFixture:
    """A named principal or resource: its uid, and its entity when the fixture defines one."""

    name: str
    uid: EntityRef
    entity: dict[str, Any] | None
    where: Location


class Scope:
    """Names visible to a suite: its own, then the shared fixtures of the bundle."""

    def __init__(self, parent: Scope | None = None) -> None:
        self.parent = parent
        self.entities: dict[str, EntityFixture] = {}
        self.contexts: dict[str, dict[str, Any]] = {}
        self.entity_sets: dict[str, tuple[dict[str, Any], ...]] = {}
        self.identities: dict[str, Identity] = {}
        self.defined: dict[tuple[str, str], Location] = {}

    @overload
    def find(self, table: Literal["entities"], name: str) -> EntityFixture | None: ...
    @overload
    def find(self, table: Literal["contexts"], name: str) -> dict[str, Any] | None: ...
    @overload
    def find(
        self, table: Literal["entity_sets"], name: str
    ) -> tuple[dict[str, Any], ...] | None: ...
    @overload
    def find(self, table: Literal["identities"], name: str) -> Identity | None: ...
    def find(self, table: str, name: str) -> Any:
        """The fixture `name` in `table`, looking outward; None when it is nowhere."""
        scope: Scope | None = self
        while scope is not None:
            found = getattr(scope, table).get(name)
            if found is not None:
                return found
            scope = scope.parent
        return None

    def names(self, table: str) -> list[str]:
        scope: Scope | None = self
        found: set[str] = set()
        while scope is not None:
            found.update(getattr(scope, table))
            scope = scope.parent
        return sorted(found)

    def define(
        self, reader: SuiteReader, table: str, name: str, value: Any, where: Location
    ) -> None:
        """Add a fixture; a name defined twice at the same level is an error naming both."""
        earlier = self.defined.get((table, name))
        if earlier is not None:
            reader.problems.append(
                _problem(where, f"fixture {name!r} is defined twice (first at {earlier})")
            )
            return
        self.defined[(table, name)] = where
        getattr(self, table)[name] = value


def _problem(where: Location, message: str) -> Problem:
    return Problem(where.file, message, where.line)


def read_fixtures(reader: SuiteReader, doc: YMap, scope: Scope, *, entity_sets: bool) -> None:
    """Read the fixture sections of `doc` into `scope`.

    In a fixture file `entities` is a mapping of named entity sets; in a suite it is a plain
    list of the suite's entities and is read by the suite parser instead.
    """
    for section in ("principals", "resources"):
        if section not in doc:
            continue
        table = reader.mapping(doc, section, section)
        for name in _names(reader, table, section):
            fixture = read_entity_fixture(reader, table, name, scope)
            if fixture is not None:
                scope.define(reader, "entities", name, fixture, fixture.where)
    if "contexts" in doc:
        table = reader.mapping(doc, "contexts", "contexts")
        for name in _names(reader, table, "contexts"):
            context = reader.context(table, name, f"context {name!r}")
            if context is not None:
                where = Location(reader.path, line_of(table, name))
                scope.define(reader, "contexts", name, context, where)
    if "identities" in doc:
        table = reader.mapping(doc, "identities", "identities")
        for name in _names(reader, table, "identities"):
            identity = read_identity(reader, table, name, scope, inline_only=True)
            if identity is not None:
                where = Location(reader.path, line_of(table, name))
                scope.define(reader, "identities", name, identity, where)
    if entity_sets and "entities" in doc:
        table = reader.mapping(doc, "entities", "entities (named entity sets)")
        for name in _names(reader, table, "entity sets"):
            items = read_entity_list(reader, table, name, scope, f"entity set {name!r}")
            if items is not None:
                where = Location(reader.path, line_of(table, name))
                scope.define(reader, "entity_sets", name, tuple(items), where)


def _names(reader: SuiteReader, table: YMap | None, what: str) -> list[str]:
    if table is None:
        return []
    names = []
    for name in table:
        if isinstance(name, str) and NAME.match(name):
            names.append(name)
        else:
            reader.error(
                table, name, f"{what}: {name!r} is not a valid fixture name (letters, digits, _.-)"
            )
    return names


def read_entity_fixture(
    reader: SuiteReader, table: Any, key: Any, scope: Scope
) -> EntityFixture | None:
    """A principal or resource fixture: a uid, or an entity with `uid`, `attrs`, `parents`."""
    value = table[key]
    where = Location(reader.path, line_of(table, key))
    if isinstance(value, dict) and "uid" in value:
        entity = reader.entity(table, key, f"fixture {key!r}")
        if entity is None:
            return None
        return EntityFixture(str(key), EntityRef(**entity["uid"]), entity, where)
    ref = reader.uid(table, key, f"fixture {key!r}")
    return None if ref is None else EntityFixture(str(key), ref, None, where)


def resolve_entity(
    reader: SuiteReader, container: Any, key: Any, scope: Scope, what: str
) -> EntityFixture | None:
    """A case's principal or resource: a fixture name, a uid, or an inline entity."""
    value = container[key]
    if isinstance(value, str) and "::" not in value:
        found = scope.find("entities", value)
        if found is None:
            known = ", ".join(scope.names("entities")) or "none defined"
            reader.error(
                container,
                key,
                f'{what}: unknown fixture {value!r} (known: {known}); write a uid as Type::"id"',
            )
        return found
    return read_entity_fixture(reader, container, key, scope)


def read_entity_list(
    reader: SuiteReader, container: Any, key: Any, scope: Scope, what: str
) -> list[dict[str, Any]] | None:
    """A list of entities: Cedar JSON objects, or names of entity sets or entity fixtures."""
    items = reader.sequence(container, key, what)
    if items is None:
        return None
    found: list[dict[str, Any]] = []
    ok = True
    for index, item in enumerate(items):
        if isinstance(item, str):
            listed = _named_entities(scope, item)
            if listed is None:
                sets = ", ".join(scope.names("entity_sets")) or "none defined"
                reader.error(
                    items,
                    index,
                    f"{what}: {item!r} names no entity set (known: {sets}) "
                    "nor a principal/resource fixture that defines an entity",
                )
                ok = False
            else:
                found.extend(listed)
            continue
        entity = reader.entity(items, index, f"{what} item {index}")
        ok = ok and entity is not None
        if entity is not None:
            found.append(entity)
    return found if ok else None


def _named_entities(scope: Scope, name: str) -> list[dict[str, Any]] | None:
    listed = scope.find("entity_sets", name)
    if listed is not None:
        return list(listed)
    fixture = scope.find("entities", name)
    if fixture is not None and fixture.entity is not None:
        return [fixture.entity]
    return None


def read_context(
    reader: SuiteReader, container: Any, key: Any, scope: Scope
) -> dict[str, Any] | None:
    """A context: a mapping of Cedar JSON values, or the name of a context fixture."""
    value = container[key]
    if isinstance(value, str):
        found = scope.find("contexts", value)
        if found is None:
            known = ", ".join(scope.names("contexts")) or "none defined"
            reader.error(container, key, f"unknown context fixture {value!r} (known: {known})")
        return found
    return reader.context(container, key, "context")


def read_identity(
    reader: SuiteReader, container: Any, key: Any, scope: Scope, inline_only: bool = False
) -> Identity | None:
    """An HTTP caller: `{claims: {...}, spiffe: spiffe://...}` or an identity fixture name."""
    value = container[key]
    if isinstance(value, str) and not inline_only:
        found = scope.find("identities", value)
        if found is None:
            known = ", ".join(scope.names("identities")) or "none defined"
            reader.error(container, key, f"unknown identity fixture {value!r} (known: {known})")
        return found
    mapping = reader.mapping(container, key, "identity")
    if mapping is None or not reader.known_keys(mapping, IDENTITY_KEYS, "identity"):
        return None
    claims: dict[str, Any] | None = None
    if "claims" in mapping:
        claims = reader.mapping(mapping, "claims", "identity claims")
        problem = None if claims is None else json_value_problem(claims)
        if problem:
            reader.error(mapping, "claims", f"identity claims: {problem}")
            return None
        if claims is None:
            return None
        claims = plain(claims)
    spiffe = None
    if "spiffe" in mapping:
        spiffe = mapping["spiffe"]
        if not isinstance(spiffe, str) or not spiffe.startswith("spiffe://"):
            reader.error(
                mapping,
                "spiffe",
                f"spiffe must be a SPIFFE id like spiffe://domain/path, not {kind(spiffe)}",
            )
            return None
    if claims is None and spiffe is None:
        reader.error(
            container, key, "identity needs claims or spiffe (leave identity out for anonymous)"
        )
        return None
    return Identity(claims=claims, spiffe=spiffe)
