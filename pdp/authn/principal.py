"""Verified claims -> a Cedar principal: its type and id, roles as parents, chosen attributes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.errors import AuthnError
from pdp.model import EntityRef

MAX_ROLES = 100
MAX_SCOPES = 1000
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


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class ClaimTemplate:
    """A principal id built from claims: `{sub}`, `{iss}|{sub}`, `partner-{client_id}`.

    `parts` alternate literal text and claim names: even positions are literals (maybe ""),
    odd positions claim names (dotted paths reach nested claims).
    """

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ClaimTemplate:
        """ValueError unless `text` is literals and `{claim}` placeholders, at least one."""
        parts: list[str] = []
        at = 0
        for match in _PLACEHOLDER.finditer(text):
            parts += [text[at : match.start()], match.group(1).strip()]
            at = match.end()
        parts.append(text[at:])
        literals = parts[::2]
        if any("{" in literal or "}" in literal for literal in literals):
            raise ValueError(f"{text!r}: braces only enclose a claim name, like {{sub}}")
        names = parts[1::2]
        if not names:
            raise ValueError(f"{text!r} names no claim: write claims in braces, like {{sub}}")
        if not all(names):
            raise ValueError(f"{text!r}: an empty {{}} names no claim")
        return cls(text, tuple(parts))

    @classmethod
    def claim(cls, name: str) -> ClaimTemplate:
        """The id is this one claim (`id_claim`)."""
        return cls(f"{{{name}}}", ("", name, ""))

    @property
    def claims(self) -> tuple[str, ...]:
        return self.parts[1::2]

    def bounds(self, fixed: Mapping[str, str]) -> tuple[str, str]:
        """The text every id starts and ends with, given claims whose value is `fixed` (the
        verified `iss` of an issuer): (prefix, suffix). Equal to the whole id when no other
        claim is used."""
        parts = [p if i % 2 == 0 else fixed.get(p) for i, p in enumerate(self.parts)]
        prefix: list[str] = []
        for part in parts:
            if part is None:
                break
            prefix.append(part)
        suffix: list[str] = []
        for part in reversed(parts):
            if part is None:
                break
            suffix.append(part)
        return "".join(prefix), "".join(reversed(suffix))

    def render(self, claims: Mapping[str, Any]) -> str:
        """The id for verified `claims`; AuthnError when a claim is missing or unusable."""
        parts = self.parts
        if len(parts) == 3 and not parts[0] and not parts[2]:
            subject = _id_value(claims, parts[1])  # `{sub}`: the usual case
        else:
            subject = "".join(
                part if i % 2 == 0 else _id_value(claims, part) for i, part in enumerate(parts)
            )
        if len(subject) > MAX_ID_LENGTH:
            raise AuthnError(
                "missing_claim", f"the principal id is longer than {MAX_ID_LENGTH} characters"
            )
        return subject


def _id_value(claims: Mapping[str, Any], name: str) -> str:
    value = _whole(claim_value(claims, name))
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise AuthnError(
            "missing_claim", f"token has no usable {name!r} claim for the principal id"
        )
    return value


SUBJECT = ClaimTemplate.claim("sub")  # the default principal id: the `sub` claim


@dataclass(frozen=True, slots=True)
class PrincipalMapping:
    """How an issuer's claims become a principal (claim names may be dotted paths).

    `id` builds the principal id from claims (default: the `sub` claim alone);
    `allow_id_collisions` accepts that another identity source may mint the same ids.
    """

    type: str
    id: ClaimTemplate = SUBJECT
    roles_claim: str | None = None
    role_type: str | None = None
    attributes: tuple[AttributeClaim, ...] = ()
    allow_id_collisions: bool = False

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal for verified `claims`; AuthnError when the id claim is unusable."""
        subject = self.id.render(claims)
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


def roles(claims: Mapping[str, Any], path: str, limit: int = MAX_ROLES) -> list[str]:
    """The names in a claim that is a list of strings or one space-separated string.

    An absent claim is no names. A claim present in any other shape, with a name that is not
    a non-empty string of at most MAX_ID_LENGTH characters, or with more than `limit` names,
    is refused (AuthnError `bad_claim`) rather than cut: a dropped role could be the
    one a `forbid` looks for (`principal in Role::"suspended"`).
    """
    value = claim_value(claims, path)
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        raise AuthnError("bad_claim", f"claim {path!r} is not a list or a space-separated string")
    if any(not isinstance(v, str) or not v or len(v) > MAX_ID_LENGTH for v in value):
        raise AuthnError(
            "bad_claim",
            f"claim {path!r} holds a value that is not a name of 1 to {MAX_ID_LENGTH} characters",
        )
    names = list(dict.fromkeys(value))
    if len(names) > limit:
        raise AuthnError("bad_claim", f"claim {path!r} holds more than {limit} names")
    return names


def scopes(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """OAuth scopes from `scope` (space-separated) or `scp` (a list) style claims."""
    return tuple(roles(claims, path, MAX_SCOPES))


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
