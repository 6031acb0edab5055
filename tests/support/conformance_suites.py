"""Generates a `pdp test` bundle (policies + tests/conformance.yaml) from a conformance case."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from pdp.bundle import load_bundle
from pdp.model import EntityRef
from tests.support.conformance import Case, load_cases, positional_ids, write_bundle

SUITE_FILE = "tests/conformance.yaml"
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_suite_bundle(case: Case, target: Path) -> Path:
    """Lay `case` out as a bundle with one suite holding every request of the case."""
    validation = None if case.should_validate else "off"
    write_bundle(case, target, validation)
    ids = positional_ids(load_bundle(target))
    suite = suite_for(case, ids)
    (target / "tests").mkdir(exist_ok=True)
    (target / SUITE_FILE).write_text(
        yaml.dump(suite, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=1000),
        encoding="utf-8",
    )
    return target


def suite_for(case: Case, ids: dict[str, str]) -> dict[str, Any]:
    """The suite document: one case per request, uids written the way Cedar prints them."""
    cases = []
    for index, item in enumerate(case.requests):
        entry: dict[str, Any] = {
            "name": f"{index}: {item['description']}",
            "principal": _uid(item["principal"]),
            "action": _uid(item["action"]),
            "resource": _uid(item["resource"]),
            "context": item["context"],
            "expect": item["expected_decision"],
        }
        if item.get("expected_reasons") is not None:
            entry["determining"] = sorted(ids.get(n, n) for n in item["expected_reasons"])
        if item.get("expected_error_policies") is not None:
            entry["erroring"] = sorted(ids.get(n, n) for n in item["expected_error_policies"])
        cases.append(entry)
    return {"name": f"conformance {case.name}", "cases": cases}


def _uid(value: dict[str, str]) -> str | dict[str, str]:
    """`Type::"id"` text when it reads back exactly, else the `{type, id}` form."""
    ref = EntityRef(value["type"], value["id"])
    try:
        if EntityRef.parse(str(ref)) == ref:
            return str(ref)
    except ValueError:
        pass
    return {"type": ref.type, "id": ref.id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("conformance", type=Path, help="shared/conformance/cedar")
    parser.add_argument("target", type=Path, help="folder to write one bundle per case into")
    args = parser.parse_args(argv)
    for case in load_cases(args.conformance):
        write_suite_bundle(case, args.target / case.name)
    print(f"wrote {len(load_cases(args.conformance))} bundles under {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
