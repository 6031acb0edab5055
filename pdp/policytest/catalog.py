"""The actions a bundle knows: from its schema, else its Action entities, else its policies."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pdp.bundle.compiler import CompiledBundle
from pdp.model import EntityRef, is_action_type
from pdp.policytest.schema_actions import actions_from_schema, requestable


@dataclass(frozen=True, slots=True)
class ActionCatalog:
    """Actions a test could name, and where they were read from."""

    actions: tuple[EntityRef, ...]
    source: str  # "schema", "entities", "policies" or "none"
    note: str = ""  # why the preferred source could not be used, if it could not

    def resolve(self, name: str) -> EntityRef:
        """The action with id `name` when exactly one is known, else `Action::"name"`."""
        found = [a for a in self.actions if a.id == name]
        return found[0] if len(found) == 1 else EntityRef("Action", name)


def action_catalog(bundle: CompiledBundle) -> ActionCatalog:
    """Read the actions of `bundle`, preferring its schema's declarations."""
    note = ""
    schema = bundle.source.schema
    if schema is not None:
        try:
            declared = requestable(actions_from_schema(schema.path, schema.text))
            return ActionCatalog(tuple(a.uid for a in declared), "schema")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            note = f"could not read actions from {schema.path}: {exc}"
    from_entities = _action_entities(bundle)
    if from_entities:
        return ActionCatalog(from_entities, "entities", note)
    from_policies = _policy_actions(bundle)
    if from_policies:
        return ActionCatalog(from_policies, "policies", note)
    return ActionCatalog((), "none", note)


def _action_entities(bundle: CompiledBundle) -> tuple[EntityRef, ...]:
    source = bundle.source.entities
    if source is None:
        return ()
    try:
        items = json.loads(source.text)
    except ValueError:
        return ()
    found: list[EntityRef] = []
    groups: set[EntityRef] = set()
    for item in items if isinstance(items, list) else []:
        uid = EntityRef.from_json(item.get("uid") if isinstance(item, dict) else None)
        if uid is None or not is_action_type(uid.type):
            continue
        found.append(uid)
        for parent in item.get("parents") or []:
            parent_uid = EntityRef.from_json(parent)
            if parent_uid is not None:
                groups.add(parent_uid)
    leaves = [a for a in found if a not in groups]
    return tuple(dict.fromkeys(leaves or found))


def _policy_actions(bundle: CompiledBundle) -> tuple[EntityRef, ...]:
    """Actions named in policy scopes (`action == ...`, `action in [...]`)."""
    found: list[EntityRef] = []
    for policy in bundle.policies:
        scope = policy.est.get("action", {}) if isinstance(policy.est, dict) else {}
        entities = scope.get("entities") or ([scope["entity"]] if "entity" in scope else [])
        for value in entities:
            uid = EntityRef.from_json(value)
            if uid is not None:
                found.append(uid)
    return tuple(dict.fromkeys(found))
