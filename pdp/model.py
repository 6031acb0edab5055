"""Plain request and decision types shared by every edge; no protobuf, no cedarpy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_quote = json.encoder.encode_basestring  # as json.dumps(text, ensure_ascii=False), cheaper
_quote_ascii = json.encoder.encode_basestring_ascii  # as json.dumps(text), cheaper
_UID_TEXT = re.compile(
    r'^\s*(?P<type>[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)::"(?P<id>.*)"\s*$', re.S
)

Uid = tuple[str, str]  # (type, id): an entity uid as a cheap, hashable key


def uid_parts(value: Any) -> dict[str, str]:
    """The string `type` and `id` of a Cedar JSON uid (`{"type", "id"}` or `{"__entity": ...}`),
    whichever of the two are strings (a limit check wants them even when the other is not)."""
    if isinstance(value, dict):
        value = value.get("__entity", value)
    if not isinstance(value, dict):
        return {}
    return {part: value[part] for part in ("type", "id") if isinstance(value.get(part), str)}


def uid_of(value: Any) -> Uid | None:
    """The uid a Cedar JSON value denotes (`{"type", "id"}` or `{"__entity": ...}`), if any."""
    if isinstance(value, dict):  # (not Mapping: this runs on every request's context)
        value = value.get("__entity", value)
        if isinstance(value, dict):
            entity_type, entity_id = value.get("type"), value.get("id")
            if isinstance(entity_type, str) and isinstance(entity_id, str):
                return (entity_type, entity_id)
    return None


def uid_text(value: Any) -> str | None:
    """`Type::"id"` for a Cedar JSON uid, None when `value` is none."""
    uid = uid_of(value)
    return str(EntityRef(*uid)) if uid is not None else None


def references(value: Any) -> Iterator[Uid]:
    """Every uid-shaped value inside a Cedar JSON value (over-approximates, never misses)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            uid = uid_of(node)
            if uid is not None:
                yield uid
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A Cedar entity uid: `Type::"id"`."""

    type: str
    id: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    @property
    def uid(self) -> Uid:
        return (self.type, self.id)

    def __str__(self) -> str:
        return f"{self.type}::{_quote(self.id)}"

    def header_text(self) -> str:
        """`Type::"id"` with the id ASCII-escaped, as json.dumps quotes it: fit for a header."""
        return f"{self.type}::{_quote_ascii(self.id)}"

    @classmethod
    def from_json(cls, value: Any) -> EntityRef | None:
        """The uid a Cedar JSON value denotes (`{"type", "id"}` or `{"__entity": ...}`), if any."""
        uid = uid_of(value)
        return cls(*uid) if uid is not None else None

    @classmethod
    def parse(cls, text: str) -> EntityRef:
        """Parse `Type::"id"` as written in Cedar; raise ValueError naming the problem."""
        match = _UID_TEXT.match(text)
        if match is None:
            raise ValueError(f'expected an entity uid like User::"alice", got {text!r}')
        try:
            entity_id = json.loads(f'"{match.group("id")}"')
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid escape in entity id {text!r}: {exc.msg}") from None
        return cls(match.group("type"), entity_id)


def parse_action(text: Any) -> EntityRef:
    """An action as routes.yaml, the CLI and Envoy's context_extensions write it: a bare name
    is `Action::"name"`, text with `::` a whole uid; ValueError naming the problem."""
    if not isinstance(text, str) or not text:
        shown = json.dumps(text) if isinstance(text, str) else repr(text)
        raise ValueError(f"expected an action name (readOrder) or uid, got {shown}")
    return EntityRef.parse(text) if "::" in text else EntityRef("Action", text)


def is_action_type(entity_type: str) -> bool:
    """Whether `entity_type` is Cedar's action type, `Action` in any namespace."""
    return entity_type == "Action" or entity_type.endswith("::Action")


@dataclass(frozen=True, slots=True)
class AuthzRequest:
    """One authorization question. Context and entities are Cedar JSON, as values or text."""

    principal: EntityRef
    action: EntityRef
    resource: EntityRef
    context: Mapping[str, Any] | None = None
    context_json: str | None = None
    entities_json: str | None = None  # request-scoped entities: a Cedar JSON entity list


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one AuthzRequest, against exactly one bundle revision."""

    allowed: bool
    determining_policies: tuple[str, ...]
    erroring_policies: tuple[str, ...]
    errors: tuple[str, ...]
    decision_id: str
    bundle_revision: str
    malformed: bool = False  # the request itself was invalid (only inside a batch)
    cached: bool = False  # answered from the decision cache (pdp/decisioncache.py)

    @property
    def word(self) -> str:
        return "allow" if self.allowed else "deny"
