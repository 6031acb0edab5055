"""Small bundles written into a temporary directory for the server tests."""

from __future__ import annotations

import json
from pathlib import Path

PLAIN_REVISION = "rev-7"
BEYOND_DOUBLE = 2**53  # the first integer a double cannot tell from its successor

PLAIN_POLICIES = """\
@id("owner-read")
permit(principal, action == Action::"read", resource)
when { resource.owner == principal };

permit(principal == User::"admin", action, resource);

@id("forbid-risky")
forbid(principal, action, resource)
when { context has risk && context.risk > 90 };
"""

PLAIN_SUB_POLICIES = f"""\
permit(principal in Role::"editors", action == Action::"edit", resource);

permit(principal, action == Action::"count", resource)
when {{ context.n > {BEYOND_DOUBLE} }};
"""

PLAIN_ENTITIES = [
    {
        "uid": {"type": "User", "id": "alice"},
        "attrs": {"name": "Alice"},
        "parents": [{"type": "Role", "id": "editors"}],
    },
    {"uid": {"type": "Role", "id": "editors"}, "attrs": {}, "parents": []},
    {
        "uid": {"type": "Doc", "id": "d1"},
        "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}},
        "parents": [],
    },
]

SCHEMA = """\
entity Role;
entity User in [Role] { name: String };
entity Service;
entity Doc { owner: User };
action read appliesTo {
  principal: [User],
  resource: [Doc],
  context: { ip: ipaddr, delegate: User, amount: decimal, at: datetime }
};
"""

SCHEMA_POLICIES = """\
@id("delegated-read")
permit(principal, action == Action::"read", resource)
when {
  context.ip.isInRange(ip("10.0.0.0/8")) &&
  context.delegate == resource.owner &&
  context.amount.lessThan(decimal("10.50")) &&
  context.at < datetime("2030-01-01")
};
"""

SCHEMA_ENTITIES = [
    {"uid": {"type": "User", "id": "alice"}, "attrs": {"name": "Alice"}, "parents": []},
    {
        "uid": {"type": "Doc", "id": "d1"},
        "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}},
        "parents": [],
    },
]


def write_bundle(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) under `root` and return `root`."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def plain_bundle(root: Path) -> Path:
    """No schema: `@id` and positional ids, an erroring forbid, roles, a stray file."""
    return write_bundle(
        root,
        {
            "policies.cedar": PLAIN_POLICIES,
            "sub/write.cedar": PLAIN_SUB_POLICIES,
            "entities.json": json.dumps(PLAIN_ENTITIES, indent=1),
            "manifest.yaml": f"name: plain\nrevision: {PLAIN_REVISION}\n",
            "entity.json": "[]\n",
        },
    )


def schema_bundle(root: Path) -> Path:
    """A schema declaring ipaddr, entity, decimal and datetime context attributes."""
    return write_bundle(
        root,
        {
            "schema.cedarschema": SCHEMA,
            "read.cedar": SCHEMA_POLICIES,
            "entities.json": json.dumps(SCHEMA_ENTITIES, indent=1),
        },
    )


STRAY_WARNING = "entity.json: unknown file, ignored (did you mean entities.json?)"
