"""Cedar evaluation on the slice of a bundle a request can reach, combined exactly as Cedar does.

Cedar evaluates every policy of a set, and `Entities.with_added_json_str` copies the whole
base per call. Here a request is evaluated against only the policy sets whose scopes can
match it (`PolicyIndex`), and, when it carries entities, against only the bundle entities
it can reach (`EntityGraph`). Results of several slices combine as Cedar combines policies:
any satisfied forbid denies, else any satisfied permit allows, else deny.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from pdp.bundle.compiler import CompiledBundle
from pdp.model import Uid, is_action_type, references, uid_of


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's raw result: `allowed` is None when Cedar could not build the request."""

    allowed: bool | None
    reasons: tuple[str, ...]  # internal policy ids
    errors: tuple[str, ...]  # Cedar's messages, internal ids inside


@dataclass(frozen=True, slots=True)
class Scoped:
    """A request ready for evaluation: its cedarpy dict, its entities, whether it may slice."""

    cedar: dict[str, Any]
    entities: cedarpy.Entities
    sliceable: bool


def scoped_entities(
    bundle: CompiledBundle,
    cedars: Sequence[dict[str, Any]],
    entities_json: str | None,
    base_json: str | None = None,
) -> tuple[cedarpy.Entities, bool]:
    """Entities for requests `cedars` carrying `entities_json` (and batch-shared `base_json`).

    Returns the handle and whether policy slicing stays exact for these entities. Raises
    ValueError (Cedar's message) when the request entities do not parse.
    """
    texts = [t for t in (base_json, entities_json) if t]
    if not texts:
        return bundle.entities, True
    graph = bundle.graph
    items: list[Any] = []
    for text in texts:
        parsed = json.loads(text) if _looks_like_list(text) else None
        if not isinstance(parsed, list):
            return _merged(bundle, texts), False
        items.extend(parsed)
    own = {uid_of(item.get("uid")) if isinstance(item, dict) else None for item in items}
    # Malformed, or the same uid as a bundle entity: Cedar itself decides whether that is an
    # identical duplicate (fine) or a conflicting one (refused), on the whole set.
    colliding = None in own or any(uid in graph for uid in own if uid is not None)
    sliceable = not colliding
    for cedar in cedars if sliceable else ():
        action = (cedar["action"]["type"], cedar["action"]["id"])
        ancestors = graph.ancestors(action)
        if (
            action in own
            or not own.isdisjoint(ancestors)
            or any(u and u[0] == action[0] for u in own)
        ):
            sliceable = False  # the request redefines the action hierarchy
    if colliding or bundle.entity_count <= SUBSET_MIN_BUNDLE_ENTITIES:
        return _merged(bundle, texts), sliceable
    roots: set[Uid] = set()
    for item in items:
        roots.update(references([item.get("attrs"), item.get("tags"), item.get("parents")]))
    for cedar in cedars:
        for name in ("principal", "action", "resource"):
            roots.add((cedar[name]["type"], cedar[name]["id"]))
        roots.update(_context_references(cedar.get("context")))
    reachable = graph.closure(roots, seen=set(graph.literal_closure))
    if bundle.schema is not None:  # Cedar adds the schema's action entities itself
        reachable = {uid for uid in reachable if not is_action_type(uid[0])}
    inner = [_list_body(text) for text in texts]
    return cedarpy.Entities.from_json_str(
        graph.subset_json(reachable, [body for body in inner if body]), bundle.schema
    ), sliceable


# Below this many bundle entities, copying the whole base (Cedar's own merge) is cheaper
# than cutting a subset, whose cost is the entities it holds, whatever the bundle's size.
SUBSET_MIN_BUNDLE_ENTITIES = 128


def _context_references(context: Any) -> set[Uid]:
    if isinstance(context, str):
        try:
            context = json.loads(context)
        except (ValueError, RecursionError):  # Cedar reports it when it builds the request
            return set()
    return set(references(context)) if context is not None else set()


def _merged(bundle: CompiledBundle, texts: list[str]) -> cedarpy.Entities:
    entities = bundle.entities
    for text in texts:
        entities = entities.with_added_json_str(text, bundle.schema)
    return entities


def _looks_like_list(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("[") and stripped.endswith("]")


def _list_body(text: str) -> str:
    return text.strip()[1:-1].strip()


def authorize(bundle: CompiledBundle, scoped: Scoped) -> Outcome:
    """Evaluate one request on its slices and combine the results."""
    sets = _slices(bundle, scoped)
    results = [
        cedarpy.is_authorized(scoped.cedar, policy_set, scoped.entities, bundle.schema)
        for policy_set in sets
    ]
    return combine(results)


def authorize_batch(
    bundle: CompiledBundle,
    cedars: Sequence[dict[str, Any]],
    entities: cedarpy.Entities,
    sliceable: bool,
) -> list[Outcome]:
    """Evaluate requests sharing one entity handle, one cedarpy batch call per slice."""
    groups: dict[tuple[int, ...], tuple[list[cedarpy.PolicySet], list[int]]] = {}
    for index, cedar in enumerate(cedars):
        sets = _slices(bundle, Scoped(cedar, entities, sliceable))
        key = tuple(id(s) for s in sets)
        groups.setdefault(key, (sets, []))[1].append(index)
    per_request: list[list[cedarpy.AuthzResult]] = [[] for _ in cedars]
    for sets, members in groups.values():
        chosen = [cedars[i] for i in members]
        for policy_set in sets:
            results = cedarpy.is_authorized_batch(chosen, policy_set, entities, bundle.schema)
            for index, result in zip(members, results, strict=True):
                per_request[index].append(result)
    return [combine(results) for results in per_request]


def _slices(bundle: CompiledBundle, scoped: Scoped) -> list[cedarpy.PolicySet]:
    if not scoped.sliceable or bundle.index is None:
        return [bundle.policy_set]
    cedar = scoped.cedar
    principal = (cedar["principal"]["type"], cedar["principal"]["id"])
    action = (cedar["action"]["type"], cedar["action"]["id"])
    resource = (cedar["resource"]["type"], cedar["resource"]["id"])
    ancestors = bundle.index.action_ancestors(action)
    return bundle.index.slices(principal, action, resource, ancestors)


def combine(results: Sequence[cedarpy.AuthzResult]) -> Outcome:
    """Combine slice results as Cedar combines policies of one set."""
    if len(results) == 1:
        return _outcome(results[0])
    forbids: list[str] = []
    permits: list[str] = []
    errors: list[str] = []
    for result in results:
        if result.decision is cedarpy.Decision.NoDecision:
            return _outcome(result)
        # A Deny's reasons are its satisfied forbids; an Allow's, its satisfied permits.
        target = permits if result.decision is cedarpy.Decision.Allow else forbids
        target.extend(result.diagnostics.reasons)
        errors.extend(result.diagnostics.errors)
    if forbids:
        return Outcome(False, tuple(forbids), tuple(errors))
    return Outcome(bool(permits), tuple(permits), tuple(errors))


def _outcome(result: cedarpy.AuthzResult) -> Outcome:
    decision = result.decision
    allowed = (
        None if decision is cedarpy.Decision.NoDecision else decision is cedarpy.Decision.Allow
    )
    return Outcome(allowed, tuple(result.diagnostics.reasons), tuple(result.diagnostics.errors))
