"""The values callers pass and get back, shared by the client and embedded mode: Uid, Decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from pdp.model import EntityRef


@dataclass(frozen=True, slots=True)
class Uid:
    """A Cedar entity uid, `Type::"id"`; `str()` writes it as Cedar does."""

    type: str
    id: str

    def __str__(self) -> str:
        return str(EntityRef(self.type, self.id))

    @classmethod
    def parse(cls, text: str) -> Uid:
        """`Type::"id"` as written in Cedar; ValueError naming the problem."""
        ref = EntityRef.parse(text)
        return cls(ref.type, ref.id)

    @classmethod
    def of(cls, value: UidLike, field: str = "uid") -> Uid:
        """A Uid from `'User::"42"'`, `("User", "42")`, `{"type": ..., "id": ...}` or a Uid.

        ValueError naming `field` when `value` is none of these.
        """
        if isinstance(value, Uid):
            return value
        if isinstance(value, EntityRef):
            return cls(value.type, value.id)
        if isinstance(value, str):
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise ValueError(f"{field}: {exc}") from None
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return cls(value[0], value[1])
        if isinstance(value, Mapping):
            ref = EntityRef.from_json(value)
            if ref is not None:
                return cls(ref.type, ref.id)
        raise ValueError(
            f"{field}: expected 'Type::\"id\"', a (type, id) tuple or a Uid, got {value!r}"
        )

    @classmethod
    def action(cls, value: UidLike) -> Uid:
        """An action: a bare name (`"readOrder"`) is `Action::"readOrder"`; else as `of`."""
        if isinstance(value, str) and "::" not in value:
            if not value:
                raise ValueError("action: must not be empty")
            return cls("Action", value)
        return cls.of(value, "action")


UidLike = Union[Uid, EntityRef, str, tuple[str, str], Mapping[str, Any]]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class Request:
    """One question of a batch: principal, action, resource, and optionally context/entities."""

    principal: UidLike
    action: UidLike
    resource: UidLike
    context: Mapping[str, Any] | None = None
    entities: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """One answer, against exactly one bundle revision.

    `bool(decision)` is `decision.allowed`, so `if client.is_authorized(...):` means what it
    says; a failure to decide is an exception, never a Decision.
    """

    allowed: bool
    decision_id: str
    determining_policies: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    erroring_policies: tuple[str, ...] = ()
    bundle_revision: str = ""

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class Status:
    """What `status()` reports: whether a bundle serves, which, and the last load error."""

    serving: bool
    bundle_name: str = ""
    bundle_revision: str = ""
    policy_count: int = 0
    entity_count: int = 0
    activations: int = 0
    load_failures: int = 0
    last_error: str = ""
    warnings: tuple[str, ...] = ()
    version: str = ""
