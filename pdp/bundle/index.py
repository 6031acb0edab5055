"""Indexes a compiled bundle so a request touches only the policies and entities it can reach."""

from __future__ import annotations

import enum
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import cedarpy

from pdp.model import Uid, references, uid_of

# A scope as the index sees it: ("any",), ("type", T) or ("eq", (T, id)).
Scope = tuple[Any, ...]
ANY: Scope = ("any",)
SLICE_CACHE_SIZE = 32768
_Missing = enum.Enum("_Missing", "MISSING")  # a typed sentinel: `is` narrows it away
_MISSING: Final = _Missing.MISSING


@dataclass(frozen=True, slots=True)
class IndexedPolicy:
    """What the index needs of one policy: its id, scope and Cedar JSON form."""

    internal_id: str
    principal: Scope
    resource: Scope
    actions: frozenset[Uid] | None  # None: any action
    est: dict[str, Any]
    template: tuple[str, dict[str, Any]] | None = None  # (template id, link values) for links


class EntityGraph:
    """The bundle's entities as Cedar JSON by uid, to cut per-request subsets from.

    Cedar renders each entity with its transitive ancestors as parents, so a subset holding
    an entity knows all its ancestors without holding them. What evaluation can read beyond
    that is reached through attribute and tag values, or named by policy literals. An
    entity's references, ancestors and JSON text are worked out when first needed, so
    loading a large bundle costs one parse of Cedar's rendering and no more.
    """

    def __init__(self, entities: cedarpy.Entities, policy_literals: Iterable[Uid]) -> None:
        self._items: dict[Uid, dict[str, Any]] = {}
        for item in json.loads(str(entities)):
            uid = item["uid"]
            self._items[(uid["type"], uid["id"])] = item
        self._text: dict[Uid, str] = {}
        self._refs: dict[Uid, tuple[Uid, ...]] = {}
        self._ancestors: dict[Uid, frozenset[Uid]] = {}
        self.literal_closure = frozenset(self.closure(policy_literals))

    def __contains__(self, uid: Uid) -> bool:
        return uid in self._items

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        """Every ancestor of a bundle entity (empty for an unknown uid)."""
        found = self._ancestors.get(uid)
        if found is None:
            item = self._items.get(uid)
            if item is None:  # requests name any uid: remembering those would grow forever
                return frozenset()
            found = frozenset(u for u in map(uid_of, item.get("parents", [])) if u is not None)
            self._ancestors[uid] = found
        return found

    def _references(self, uid: Uid) -> tuple[Uid, ...]:
        found = self._refs.get(uid)
        if found is None:
            item = self._items[uid]
            found = tuple(set(references([item.get("attrs"), item.get("tags")])))
            self._refs[uid] = found
        return found

    def closure(self, roots: Iterable[Uid], seen: set[Uid] | None = None) -> set[Uid]:
        """Bundle entities reachable from `roots` through attribute and tag values."""
        items = self._items
        seen = set() if seen is None else seen
        stack = [uid for uid in roots if uid in items and uid not in seen]
        seen.update(stack)
        while stack:
            for ref in self._references(stack.pop()):
                if ref in items and ref not in seen:
                    seen.add(ref)
                    stack.append(ref)
        return seen

    def subset_json(self, uids: Iterable[Uid], extra_items: list[str]) -> str:
        """A Cedar JSON entity list of `uids` (bundle entities) and already-encoded items."""
        return "[" + ",".join([*(self._json(u) for u in uids), *extra_items]) + "]"

    def _json(self, uid: Uid) -> str:
        text = self._text.get(uid)
        if text is None:
            text = json.dumps(self._items[uid], separators=(",", ":"), ensure_ascii=False)
            self._text[uid] = text
        return text


class PolicyIndex:
    """Policies grouped by what their scope can match, with a PolicySet per slice, cached.

    A request's applicable policies are those whose action scope admits its action (through
    the bundle's action hierarchy) and whose principal and resource scopes admit its types;
    policies pinned to one principal or resource uid (`==`, including template links) are
    kept apart and only joined for that uid. Cedar never evaluates a policy whose scope does
    not match, so leaving such policies out changes no decision, reason or error.
    """

    def __init__(self, policies: list[IndexedPolicy], graph: EntityGraph) -> None:
        self._graph = graph
        self._general: list[IndexedPolicy] = []
        self._by_principal: dict[Uid, list[IndexedPolicy]] = {}
        self._by_resource: dict[Uid, list[IndexedPolicy]] = {}
        self._templates: dict[str, dict[str, Any]] = {}
        # The actions and types some scope names: no other one can change a slice.
        self._scoped_actions = frozenset(a for p in policies for a in p.actions or ())
        self._scoped_types = frozenset(
            t for p in policies for t in (_scope_type(p.principal), _scope_type(p.resource)) if t
        )
        for policy in policies:
            if policy.principal[0] == "eq":
                self._by_principal.setdefault(policy.principal[1], []).append(policy)
            elif policy.resource[0] == "eq":
                self._by_resource.setdefault(policy.resource[1], []).append(policy)
            else:
                self._general.append(policy)
        # Shared by the event loop and worker threads: every access holds the lock, or a
        # concurrent eviction between a lookup and its read raises KeyError mid-request.
        self._cache: OrderedDict[tuple[Any, ...], cedarpy.PolicySet | None] = OrderedDict()
        self._cache_lock = threading.Lock()

    def register_template(self, internal_id: str, est: dict[str, Any]) -> None:
        self._templates[internal_id] = est

    def action_ancestors(self, action: Uid) -> frozenset[Uid]:
        return self._graph.ancestors(action)

    def slices(
        self, principal: Uid, action: Uid, resource: Uid, action_ancestors: frozenset[Uid]
    ) -> list[cedarpy.PolicySet]:
        """The policy sets to evaluate for one request; always at least one (maybe empty).

        Actions and types no scope names are left out of the cache key (they select the same
        policies as no action or type at all), so requests naming arbitrary ones share
        slices instead of filling the cache with copies.
        """
        actions = (action_ancestors | {action}) & self._scoped_actions
        principal_type = principal[0] if principal[0] in self._scoped_types else None
        resource_type = resource[0] if resource[0] in self._scoped_types else None
        found = [
            self._slice(
                ("g", actions, principal_type, resource_type),
                self._general,
                principal_type,
                resource_type,
                actions,
            )
        ]
        pinned = self._by_principal.get(principal)
        if pinned:
            key = ("p", principal, actions, resource_type)
            found.append(self._slice(key, pinned, principal_type, resource_type, actions))
        pinned = self._by_resource.get(resource)
        if pinned:
            key = ("r", resource, actions, principal_type)
            found.append(self._slice(key, pinned, principal_type, resource_type, actions))
        return [s for i, s in enumerate(found) if s is not None or i == 0]  # type: ignore[misc]

    def _slice(
        self,
        key: tuple[Any, ...],
        candidates: list[IndexedPolicy],
        principal_type: str | None,
        resource_type: str | None,
        actions: frozenset[Uid],
    ) -> cedarpy.PolicySet | None:
        cache = self._cache
        with self._cache_lock:
            found = cache.get(key, _MISSING)
            if found is not _MISSING:
                cache.move_to_end(key)
                return found
        # Scopes are matched on types only, the granularity of the cache key: a policy pinned
        # to another uid of the same type stays in the slice, where Cedar's scope check
        # skips it, so one slice serves every uid of those types.
        chosen = [
            p
            for p in candidates
            if (p.actions is None or not p.actions.isdisjoint(actions))
            and _admits_type(p.principal, principal_type)
            and _admits_type(p.resource, resource_type)
        ]
        policy_set = self._policy_set(chosen) if chosen or key[0] == "g" else None
        with self._cache_lock:  # built outside the lock: two threads may build one slice
            cache[key] = policy_set
            if len(cache) > SLICE_CACHE_SIZE:
                cache.popitem(last=False)
        return policy_set

    def _policy_set(self, chosen: list[IndexedPolicy]) -> cedarpy.PolicySet:
        document: dict[str, Any] = {"staticPolicies": {}, "templates": {}, "templateLinks": []}
        for policy in chosen:
            if policy.template is None:
                document["staticPolicies"][policy.internal_id] = policy.est
                continue
            template_id, values = policy.template
            document["templates"][template_id] = self._templates[template_id]
            document["templateLinks"].append(
                {"templateId": template_id, "newId": policy.internal_id, "values": values}
            )
        return cedarpy.PolicySet.from_json_str(json.dumps(document))


def _admits_type(scope: Scope, entity_type: str | None) -> bool:
    """Whether a scope can match some entity of `entity_type` (None: a type no scope names)."""
    return scope[0] == "any" or _scope_type(scope) == entity_type


def _scope_type(scope: Scope) -> str | None:
    """The entity type a scope requires, if it requires one."""
    kind = scope[0]
    if kind == "type":
        return str(scope[1])
    if kind == "eq":
        return str(scope[1][0])
    return None


def scope_of(constraint: dict[str, Any], slot_values: dict[str, Any]) -> Scope:
    """How a principal or resource scope constrains the request's entity."""
    op = constraint.get("op")
    if op == "==":
        target = _scope_entity(constraint, slot_values)
        return ("eq", target) if target is not None else ANY
    if op == "is":
        return ("type", constraint["entity_type"])
    return ANY  # "All", "in": any type can be a descendant


def actions_of(constraint: dict[str, Any]) -> frozenset[Uid] | None:
    """The action uids an action scope names, or None when it admits every action."""
    op = constraint.get("op")
    if op == "==" or (op == "in" and "entity" in constraint):
        uid = uid_of(constraint["entity"])
        return frozenset([uid]) if uid is not None else None
    if op == "in":
        return frozenset(u for u in map(uid_of, constraint.get("entities", [])) if u is not None)
    return None


def _scope_entity(constraint: dict[str, Any], slot_values: dict[str, Any]) -> Uid | None:
    if "entity" in constraint:
        return uid_of(constraint["entity"])
    value = slot_values.get(constraint.get("slot", ""))
    return uid_of(value) if value is not None else None


def policy_literals(est: dict[str, Any]) -> Iterator[Uid]:
    """Entity literals a policy's conditions may read data of (attributes, ancestors)."""
    for condition in est.get("conditions", []):
        yield from _data_literals(condition.get("body"))


def _data_literals(node: Any) -> Iterator[Uid]:
    """Literals anywhere but as the right operand of `in` or an operand of `==`/`!=`.

    Those positions compare uids or look at the left side's ancestors: no data of the
    literal itself is read. Everywhere else it may be, so its entity is kept.
    """
    if isinstance(node, list):
        for item in node:
            yield from _data_literals(item)
        return
    if not isinstance(node, dict):
        return
    if "Value" in node:
        yield from references(node["Value"])
        return
    for op, operands in node.items():
        if op in ("==", "!=") and isinstance(operands, dict):
            for side in ("left", "right"):
                if not _is_literal(operands.get(side)):
                    yield from _data_literals(operands.get(side))
        elif op == "in" and isinstance(operands, dict):
            yield from _data_literals(operands.get("left"))
            if not _is_literal(operands.get("right")):
                yield from _data_literals(operands.get("right"))
        else:
            yield from _data_literals(operands)


def _is_literal(node: Any) -> bool:
    """An entity literal or a set of them, as EST writes them."""
    if isinstance(node, dict) and "Value" in node:
        return True
    if isinstance(node, dict) and "Set" in node:
        return all(_is_literal(item) for item in node["Set"])
    return False


def build_index(
    policy_set: cedarpy.PolicySet,
    policies: Iterable[Any],
    entities: cedarpy.Entities,
) -> tuple[PolicyIndex | None, EntityGraph]:
    """Index `policies` (PolicyInfo, with internal ids as in `policy_set`) and `entities`.

    Without a policy index (None) every request is evaluated on the whole policy set.
    """
    policies = list(policies)
    literals: set[Uid] = set()
    for policy in policies:
        literals.update(policy_literals(policy.est))
    graph = EntityGraph(entities, literals)
    try:  # link values as Cedar parsed them
        links = (
            policy_set.to_pst().template_links if any(p.kind == "link" for p in policies) else ()
        )
    except ValueError:  # syntax cedarpy's tree does not model yet: evaluate unsliced
        return None, graph
    link_values: dict[str, dict[str, Any]] = {}
    for link in links:
        link_values[link.new_id] = {
            f"?{slot}": {"type": _type_name(uid.type), "id": uid.id}
            for slot, uid in link.values.items()
        }
    by_id = {p.id: p for p in policies}
    indexed: list[IndexedPolicy] = []
    templates: dict[str, dict[str, Any]] = {}
    for policy in policies:
        if policy.kind == "template":
            templates[policy.internal_id] = policy.est
            continue
        values = link_values.get(policy.internal_id, {})
        template = None
        if policy.kind == "link":
            template = (by_id[policy.template_id].internal_id, values)
        indexed.append(
            IndexedPolicy(
                internal_id=policy.internal_id,
                principal=scope_of(policy.est.get("principal", {}), values),
                resource=scope_of(policy.est.get("resource", {}), values),
                actions=actions_of(policy.est.get("action", {})),
                est=policy.est,
                template=template,
            )
        )
    index = PolicyIndex(indexed, graph)
    for internal_id, est in templates.items():
        index.register_template(internal_id, est)
    return index, graph


def _type_name(entity_type: Any) -> str:
    return "::".join((*entity_type.namespace, entity_type.basename))
