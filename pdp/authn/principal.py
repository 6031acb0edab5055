"""Verified claims -> a Cedar principal: its type and id, roles as parents, chosen attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.errors import AuthnError
from pdp.model import EntityRef

MAX_ROLES = 100
MAX_ID_LENGTH = 1024
_LONG = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified principal, and the entity a request may carry for it."""

    uid: EntityRef
    parents: tuple[EntityRef, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def entity_json(self) -> dict[str, Any]:
        """The principal as a Cedar JSON entity."""
        return {
            "uid": self.uid.to_json(),
            "attrs": dict(self.attrs),
            "parents": [p.to_json() for p in self.parents],
        }


@dataclass(frozen=True, slots=True)
class AttributeClaim:
    """Copy claim `claim` to attribute `name`; as a reference to `entity_type` when set."""

    name: str
    claim: str
    entity_type: str | None = None


@dataclass(frozen=True, slots=True)
class PrincipalMapping:
    """How an issuer's claims become a principal (claim names may be dotted paths)."""

    type: str
    id_claim: str = "sub"
    roles_claim: str | None = None
    role_type: str | None = None
    attributes: tuple[AttributeClaim, ...] = ()

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal for verified `claims`; AuthnError when the id claim is unusable."""
        subject = _whole(claim_value(claims, self.id_claim))
        if isinstance(subject, int) and not isinstance(subject, bool):
            subject = str(subject)
        if not isinstance(subject, str) or not subject or len(subject) > MAX_ID_LENGTH:
            raise AuthnError(
                "missing_claim", f"token has no usable {self.id_claim!r} claim for the principal id"
            )
        parents: tuple[EntityRef, ...] = ()
        if self.roles_claim and self.role_type:
            parents = tuple(EntityRef(self.role_type, r) for r in roles(claims, self.roles_claim))
        attrs: dict[str, Any] = {}
        for spec in self.attributes:
            value = _cedar_value(claim_value(claims, spec.claim), spec.entity_type)
            if value is not None:
                attrs[spec.name] = value
        return Principal(EntityRef(self.type, subject), parents, attrs)


def claim_value(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at `path`: a name, or a dotted path into nested objects (`realm.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def roles(claims: Mapping[str, Any], path: str) -> list[str]:
    """The role names in a claim that is a list of strings or one space-separated string."""
    value = claim_value(claims, path)
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        return []
    names = [v for v in value if isinstance(v, str) and v and len(v) <= MAX_ID_LENGTH]
    return list(dict.fromkeys(names))[:MAX_ROLES]


def scopes(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """OAuth scopes from `scope` (space-separated) or `scp` (a list) style claims."""
    return tuple(roles(claims, path))


def _whole(value: Any) -> Any:
    """A whole float as an int: claims from Envoy metadata (a protobuf Struct) are doubles."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _cedar_value(value: Any, entity_type: str | None) -> Any:
    """A claim as a Cedar JSON value; None when it has no Cedar form (dropped)."""
    value = _whole(value)
    if value is None:
        return None
    if entity_type is not None:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return {"__entity": {"type": entity_type, "id": str(value)}}
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if _LONG[0] <= value <= _LONG[1] else None
    if isinstance(value, list):
        items = [_cedar_value(v, None) for v in value]
        return [v for v in items if v is not None and not isinstance(v, list | dict)]
    return None
