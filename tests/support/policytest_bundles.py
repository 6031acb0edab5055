"""Small bundles written to disk for the policy test runner's own tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

DOCS_POLICIES = """\
@id("owner-read")
permit (principal is User, action == Action::"read", resource is Doc)
when { resource.owner == principal };

@id("admin-all")
permit (principal in Role::"admin", action, resource);

@id("no-archived-delete")
forbid (principal, action == Action::"delete", resource is Doc)
when { resource.archived };

@id("share-high-level")
permit (principal is User, action == Action::"share", resource is Doc)
when { context.level > 5 };
"""

DOCS_SCHEMA = """\
entity Role;
entity User in [Role] = { level?: Long };
entity Doc = { owner: User, archived: Bool };
action read, delete appliesTo { principal: [User], resource: [Doc] };
action share appliesTo { principal: [User], resource: [Doc], context: { level: Long } };
"""

DOCS_ENTITIES = """\
[
  {"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": []},
  {"uid": {"type": "User", "id": "root"}, "attrs": {},
   "parents": [{"type": "Role", "id": "admin"}]},
  {"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Doc", "id": "d1"},
   "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}, "archived": false},
   "parents": []}
]
"""

PEOPLE_FIXTURES = """\
principals:
  alice: User::"alice"
  root: User::"root"
  bob:
    uid: User::"bob"
resources:
  d1: Doc::"d1"
  archived:
    uid: Doc::"old"
    attrs: {owner: {__entity: {type: User, id: alice}}, archived: true}
contexts:
  high: {level: 9}
  low: {level: 1}
entities:
  bobs-doc:
    - uid: Doc::"bd"
      attrs: {owner: {__entity: {type: User, id: bob}}, archived: false}
"""


def write_bundle(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text, dedented) under `root` and return it."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def docs_bundle(root: Path, suites: dict[str, str] | None = None, fixtures: bool = True) -> Path:
    """The docs bundle (4 policies, 3 actions) with `suites` as tests/<name>."""
    files = {
        "policies.cedar": DOCS_POLICIES,
        "docs.cedarschema": DOCS_SCHEMA,
        "entities.json": DOCS_ENTITIES,
    }
    if fixtures:
        files["tests/fixtures/people.yaml"] = PEOPLE_FIXTURES
    for name, text in (suites or {}).items():
        files[f"tests/{name}"] = text
    return write_bundle(root, files)
