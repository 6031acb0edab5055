"""Turns the shared Cedar conformance cases into pdp bundles and expected decisions."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdp.bundle.compiler import CompiledBundle

CASE_FILES = ("policies.cedar", "entities.json", "links.json")


@dataclass(frozen=True)
class Case:
    """One conformance case directory, read."""

    name: str
    path: Path
    meta: dict[str, Any]
    requests: list[dict[str, Any]]

    @property
    def should_validate(self) -> bool:
        return bool(self.meta["should_validate"])

    @property
    def uses_schema(self) -> bool:
        return bool(self.meta.get("schema_file")) and bool(
            self.meta.get("schema_used_for_authorization", True)
        )


def load_cases(root: Path) -> list[Case]:
    cases = []
    for path in sorted(p for p in root.iterdir() if (p / "case.json").is_file()):
        meta = json.loads((path / "case.json").read_text())
        requests = json.loads((path / "requests.json").read_text())
        cases.append(Case(path.name, path, meta, requests))
    return cases


def write_bundle(case: Case, target: Path, validation: str | None = None) -> Path:
    """Lay the case out as a pdp bundle; `validation` goes into its manifest when given."""
    target.mkdir(parents=True, exist_ok=True)
    for name in CASE_FILES:
        if (case.path / name).is_file():
            shutil.copyfile(case.path / name, target / name)
    if case.uses_schema:
        schema = case.meta["schema_file"]
        shutil.copyfile(case.path / schema, target / schema)
    manifest = f"name: {case.name}\n"
    if validation:
        manifest += f"validation: {validation}\n"
    (target / "manifest.yaml").write_text(manifest)
    return target


def positional_ids(bundle: CompiledBundle) -> dict[str, str]:
    """Map the source's positional names (policy0, ...) to the ids pdp gives those policies."""
    mapping: dict[str, str] = {}
    for policy in bundle.policies:
        if policy.kind == "link":
            mapping[policy.id] = policy.id
        elif policy.file == "policies.cedar":
            position = len([k for k in mapping if k.startswith("policy")])
            mapping[f"policy{position}"] = policy.id
    return mapping


def expected_ids(names: list[str] | None, mapping: dict[str, str]) -> set[str] | None:
    return None if names is None else {mapping.get(n, n) for n in names}
