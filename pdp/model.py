"""Plain request and decision types shared by every edge; no protobuf, no cedarpy."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_quote = json.encoder.encode_basestring  # as json.dumps(text, ensure_ascii=False), cheaper
_UID_TEXT = re.compile(
    r'^\s*(?P<type>[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)::"(?P<id>.*)"\s*$', re.S
)


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A Cedar entity uid: `Type::"id"`."""

    type: str
    id: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    def __str__(self) -> str:
        return f"{self.type}::{_quote(self.id)}"

    @classmethod
    def from_json(cls, value: Any) -> EntityRef | None:
        """The uid a Cedar JSON value denotes (`{"type", "id"}` or `{"__entity": ...}`), if any."""
        if isinstance(value, Mapping):
            value = value.get("__entity", value)
        if isinstance(value, Mapping):
            entity_type, entity_id = value.get("type"), value.get("id")
            if isinstance(entity_type, str) and isinstance(entity_id, str):
                return cls(entity_type, entity_id)
        return None

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

    @property
    def word(self) -> str:
        return "allow" if self.allowed else "deny"
