"""Plain types of query plans: the question, the plan, and what it could not express.

Foundation layer (docs/architecture.md): `pdp.client` reads plans without loading the planner.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.model import EntityRef


class PlanKind(enum.Enum):
    """Whether every resource, none, or those matching the condition are allowed."""

    ALWAYS_ALLOWED = "ALWAYS_ALLOWED"
    ALWAYS_DENIED = "ALWAYS_DENIED"
    CONDITIONAL = "CONDITIONAL"


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Which resources of `resource_type` may `principal` do `action` on?"""

    principal: EntityRef
    action: EntityRef
    resource_type: str
    context: Mapping[str, Any] | None = None
    context_json: str | None = None
    entities_json: str | None = None  # request-scoped entities, as for IsAuthorized


@dataclass(frozen=True, slots=True)
class UnsupportedPart:
    """A residual part no condition can express: the plan names it instead of guessing."""

    policy: str
    expression: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"policy": self.policy, "expression": self.expression, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer: `condition` (README, "Query plans") holds for exactly the allowed rows."""

    kind: PlanKind
    condition: dict[str, Any]
    policies: tuple[str, ...]  # bundle ids of the policies that may determine a row's decision
    resource_type: str
    decision_id: str
    bundle_revision: str
    unsupported: tuple[UnsupportedPart, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "condition": self.condition,
            "policies": list(self.policies),
            "unsupported": [part.to_json() for part in self.unsupported],
            "resource_type": self.resource_type,
            "decision_id": self.decision_id,
            "bundle_revision": self.bundle_revision,
        }
