"""Limits of pdp.v1 calls (IsAuthorized, BatchIsAuthorized, PlanResources): sizes, counts and
the request entities' hierarchy, checked on the raw message before anything is converted."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Mapping
from typing import Any

from pdp.errors import LimitExceeded
from pdp.model import Uid
from pdp.server.limits import Limits, over
from pdp.server.limits.walk import Parents, check_context_json, check_entities_json, check_struct


def check_request(
    message: Any, limits: Limits, prefix: str = "", shared: Parents | None = None
) -> None:
    """Raise LimitExceeded when an IsAuthorizedRequest (or batch item) is over a limit.

    `shared` is the hierarchy of a batch's shared entities, which an item's own build on.
    """
    longest = limits.max_id_length
    for name in _UIDS:
        uid = getattr(message, name)
        if len(uid.type) > longest or len(uid.id) > longest:  # the field named only then
            _check_uid(uid, f"{prefix}{name}", limits)
    _check_context_and_entities(message, limits, prefix, shared)


_UIDS = ("principal", "action", "resource")


def check_plan_request(message: Any, limits: Limits) -> None:
    """Raise LimitExceeded when a PlanResourcesRequest is over a limit."""
    for name in ("principal", "action"):
        _check_uid(getattr(message, name), name, limits)
    if len(message.resource_type) > limits.max_id_length:
        count = f"{len(message.resource_type)} characters"
        raise over("resource_type", count, limits, "max_id_length")
    _check_context_and_entities(message, limits, "", None)


def _check_context_and_entities(
    message: Any, limits: Limits, prefix: str, shared: Parents | None
) -> None:
    if message.HasField("context"):
        check_struct(message.context, f"{prefix}context", limits, count_keys=True)
    if message.context_json:
        check_context_json(message.context_json, f"{prefix}context_json", limits)
    entities, entities_json = message.entities, message.entities_json
    if entities or entities_json:
        check_entities(entities, entities_json, prefix + "entities", limits, shared)


def check_batch(message: Any, limits: Limits) -> Parents | None:
    """Raise LimitExceeded when a batch as a whole (size, shared entities) is over a limit.

    Returns the shared entities' hierarchy when items carry entities of their own.
    """
    if len(message.requests) > limits.max_batch_items:
        raise LimitExceeded(  # worded as before the other limits existed: clients match it
            "requests",
            f"{len(message.requests)} items is over the batch limit of {limits.max_batch_items}",
        )
    if not (message.entities or message.entities_json):
        return None
    own = any(item.entities or item.entities_json for item in message.requests)
    parents = check_entities(message.entities, message.entities_json, "entities", limits, None, own)
    return parents if own else None


def check_entities(
    entities: Any,
    text: str,
    field: str,
    limits: Limits,
    shared: Parents | None = None,
    hierarchy: bool = False,
) -> Parents:
    """Request entities, as a repeated Entity field or as Cedar JSON text; their hierarchy.

    The hierarchy (with `shared`'s) is bounded because Cedar computes its transitive closure
    for every request, at a cost that grows much faster than the number of links.
    """
    if len(entities) > limits.max_entities:
        raise over(field, f"{len(entities)} entities", limits, "max_entities")
    parents: Parents = {}
    links_count = sum(len(entity.parents) for entity in entities) if entities else 0
    if links_count > limits.max_ancestors:  # every link is a pair: no need to look further
        raise over(field, f"{links_count} parent links", limits, "max_ancestors")
    for index, entity in enumerate(entities):
        where = f"{field}[{index}]"
        _check_uid(entity.uid, f"{where}.uid", limits)
        if len(entity.parents) > limits.max_entities:
            count = f"{len(entity.parents)} parents"
            raise over(f"{where}.parents", count, limits, "max_entities")
        for position, parent in enumerate(entity.parents):
            _check_uid(parent, f"{where}.parents[{position}]", limits)
        links = parents.setdefault((entity.uid.type, entity.uid.id), set())
        links.update((p.type, p.id) for p in entity.parents)
        if entity.HasField("attrs"):
            check_struct(entity.attrs, f"{where}.attrs", limits)
        if entity.HasField("tags"):
            check_struct(entity.tags, f"{where}.tags", limits)
    if text:
        field = f"{field}_json"  # what the hierarchy check below names too
        check_entities_json(text, field, limits, parents, shared is None and not hierarchy)
    if not parents:
        return parents
    graph: Mapping[Uid, set[Uid]] = ChainMap(parents, shared) if shared else parents
    if ancestor_pairs(graph, limits.max_ancestors, roots=parents) > limits.max_ancestors:
        what = "the count of entity-ancestor pairs"
        raise over(field, what, limits, "max_ancestors")
    return parents


def ancestor_pairs(
    parents: Mapping[Uid, set[Uid]], limit: int, roots: Iterable[Uid] | None = None
) -> int:
    """How many (entity, ancestor) pairs the links imply for `roots` (default: every entity)
    and their ancestors; stops counting once over `limit`.

    Iterative (no recursion limit), and a cycle ends a path instead of looping: Cedar refuses
    cycles itself. The work done is bounded by about `limit` times the largest ancestor set.
    """
    known: dict[Uid, set[Uid]] = {}
    total = 0
    for root in parents if roots is None else roots:
        if root in known:
            continue
        stack: list[tuple[Uid, bool]] = [(root, False)]
        open_path: set[Uid] = set()
        while stack:
            node, expanded = stack.pop()
            if node in known:
                continue
            links = parents.get(node, set())
            if not expanded:
                open_path.add(node)
                stack.append((node, True))
                stack.extend(
                    (up, False)
                    for up in links
                    if up in parents and up not in known and up not in open_path
                )
                continue
            open_path.discard(node)
            ancestors = set(links)
            for up in links:
                ancestors |= known.get(up, set())
            known[node] = ancestors
            total += len(ancestors)
            if total > limit:
                return total
    return total


def _check_uid(uid: Any, field: str, limits: Limits) -> None:
    for part in ("type", "id"):
        value = getattr(uid, part)
        if len(value) > limits.max_id_length:
            raise over(f"{field}.{part}", f"{len(value)} characters", limits, "max_id_length")
