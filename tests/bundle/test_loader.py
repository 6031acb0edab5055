"""Reading a bundle directory: which files count, warnings for strays, manifest, revision."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from pdp.bundle.loader import read_bundle
from pdp.bundle.manifest import LogRules
from pdp.errors import BundleError
from tests.support.bundles import OWNER_READS, SCHEMA, write_bundle

ALLOW_ALL = "permit (principal, action, resource);\n"


def messages(error: pytest.ExceptionInfo[BundleError]) -> list[str]:
    return [str(problem) for problem in error.value.problems]


def test_dot_entries_and_editor_temp_files_are_never_content(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "b",
        {
            "p.cedar": ALLOW_ALL,
            ".git/config.cedar": "not cedar at all",
            ".hidden.cedar": "not cedar at all",
            ".#p.cedar": "emacs lock",
            "#p.cedar#": "emacs autosave",
            "p.cedar~": "backup",
            ".p.cedar.swp": "vim swap",
            "p.cedar.swp": "vim swap",
        },
    )
    source = read_bundle(bundle)
    assert sorted(source.files) == ["p.cedar"]
    assert source.warnings == ()


def test_configmap_mount_reads_visible_files_through_data_link_only(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    current = write_bundle(
        root / "..2026_11_30_07_00_00.123",
        {"p.cedar": OWNER_READS, "orders.cedarschema": SCHEMA},
    )
    # A stale revision left behind by the kubelet must never be read as content.
    write_bundle(root / "..2026_11_29_07_00_00.001", {"p.cedar": "permit (broken"})
    (root / "..data").symlink_to(current.name)
    for name in ("p.cedar", "orders.cedarschema"):
        (root / name).symlink_to(f"..data/{name}")

    bundle = load_bundle(root)

    assert sorted(bundle.source.files) == ["orders.cedarschema", "p.cedar"]
    assert [p.id for p in bundle.policies] == ["owner-reads"]
    assert bundle.warnings == ()


def test_unknown_files_are_warnings_with_hints(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "b",
        {
            "p.cedar": ALLOW_ALL,
            "entity.json": "[]",
            "notes.rst": "hello",
            "orders/entities.json": "[]",
            "schema.cedarschema.yaml": "",
            "README.md": "docs are fine",
            "keys/issuer.jwks.json": "{}",
        },
    )
    source = read_bundle(bundle)
    assert [f"{w} [{w.severity}]" for w in source.warnings] == [
        "entity.json: unknown file, ignored (did you mean entities.json?) [warning]",
        "notes.rst: unknown file, ignored [warning]",
        "orders/entities.json: unknown file, ignored (entities.json is only read at the "
        "bundle root) [warning]",
        "schema.cedarschema.yaml: unknown file, ignored (a schema is *.cedarschema or "
        "*.cedarschema.json) [warning]",
    ]
    assert source.entities is None


def test_warnings_survive_a_failed_load(tmp_path: Path) -> None:
    # The typo explains the error: the policies' entities were meant to be in entities.json.
    bundle = write_bundle(
        tmp_path / "b",
        {"p.cedar": "permit (principal, action, resource", "entity.json": "[]"},
    )
    with pytest.raises(BundleError) as error:
        load_bundle(bundle)
    assert [str(w) for w in error.value.warnings] == [
        "entity.json: unknown file, ignored (did you mean entities.json?)"
    ]
    assert all(p.severity == "error" for p in error.value.problems)


def test_two_schemas_are_refused(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "b",
        {"p.cedar": ALLOW_ALL, "a.cedarschema.json": "{}", "b.cedarschema": SCHEMA},
    )
    with pytest.raises(BundleError) as error:
        read_bundle(bundle)
    assert messages(error) == [
        "b.cedarschema: a bundle has at most one schema; found a.cedarschema.json, b.cedarschema"
    ]


def test_missing_empty_and_policy_less_bundles(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as missing:
        read_bundle(tmp_path / "nope")
    assert messages(missing) == [f"{tmp_path / 'nope'}: bundle directory does not exist"]

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".keep").write_text("")
    with pytest.raises(BundleError) as empty:
        read_bundle(tmp_path / "empty")
    assert messages(empty) == [f"{tmp_path / 'empty'}: bundle directory is empty"]

    no_policies = write_bundle(tmp_path / "np", {"entities.json": "[]"})
    with pytest.raises(BundleError) as none:
        read_bundle(no_policies)
    assert messages(none) == [f"{no_policies}: bundle has no .cedar policy files"]


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", {"p.cedar": ALLOW_ALL})
    (bundle / "q.cedar").write_bytes(b"// caf\xe9\n" + ALLOW_ALL.encode())
    with pytest.raises(BundleError) as error:
        read_bundle(bundle)
    assert messages(error) == ["q.cedar: file is not UTF-8 text (byte 6)"]


# --- manifest.yaml ----------------------------------------------------------------------


def manifest_of(tmp_path: Path, text: str):
    return read_bundle(write_bundle(tmp_path / "b", {"p.cedar": ALLOW_ALL, "manifest.yaml": text}))


@pytest.mark.parametrize("value", ["off", "'off'", '"off"'])
def test_validation_off_accepted_bare_or_quoted(tmp_path: Path, value: str) -> None:
    # YAML 1.1 reads a bare `off` as the boolean false; pdp reads what was written.
    assert manifest_of(tmp_path, f"validation: {value}\n").manifest.validation == "off"


def test_validation_defaults_to_strict(tmp_path: Path) -> None:
    assert manifest_of(tmp_path, "name: x\n").manifest.validation == "strict"
    assert manifest_of(tmp_path, "validation: strict\n").manifest.validation == "strict"
    assert manifest_of(tmp_path, "# nothing yet\n").manifest.validation == "strict"


@pytest.mark.parametrize(
    ("value", "shown"), [("lax", "'lax'"), ("false", "'false'"), ("Off", "'Off'"), ("1", "'1'")]
)
def test_bad_validation_value_is_refused_with_its_line(
    tmp_path: Path, value: str, shown: str
) -> None:
    with pytest.raises(BundleError) as error:
        manifest_of(tmp_path, f"name: orders\nvalidation: {value}\n")
    assert messages(error) == [
        f"manifest.yaml:2: validation must be 'strict' or 'off', not {shown}"
    ]


@pytest.mark.parametrize("revision", ["1.10", "0123", "2026-11-30", "v1.2.3", "7"])
def test_revision_is_taken_as_written(tmp_path: Path, revision: str) -> None:
    # YAML alone would read 1.10 as 1.1, 0123 as 83 and 2026-11-30 as a date.
    source = manifest_of(tmp_path, f"name: orders-api\nrevision: {revision}\n")
    assert source.revision == revision
    assert source.name == "orders-api"


def test_manifest_problems_are_located(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as syntax:
        manifest_of(tmp_path / "1", "name: orders\n  revision: 3\n")
    assert messages(syntax) == [
        "manifest.yaml:2:11: invalid YAML: mapping values are not allowed in this context"
    ]
    with pytest.raises(BundleError) as not_a_map:
        manifest_of(tmp_path / "2", "- name: x\n")
    assert messages(not_a_map) == ["manifest.yaml:1: must be a YAML mapping"]
    with pytest.raises(BundleError) as not_a_string:
        manifest_of(tmp_path / "3", "name:\n  first: x\n")
    assert messages(not_a_string) == ["manifest.yaml:1: name must be a string"]
    with pytest.raises(BundleError) as duplicate:
        manifest_of(tmp_path / "4", "name: a\nvalidation: off\nname: b\n")
    assert messages(duplicate) == [
        "manifest.yaml:3:1: invalid YAML: duplicate key 'name' (first on line 1)"
    ]


def test_decision_log_rules_are_parsed_once_at_load(tmp_path: Path) -> None:
    text = "decision_log:\n  context: true\n  mask: [context.card.number]\n"
    rules = manifest_of(tmp_path, text).manifest.decision_log
    assert rules == LogRules(context=True, mask=(("context", "card", "number"),))
    assert manifest_of(tmp_path / "none", "name: x\n").manifest.decision_log == LogRules()


def test_decision_log_keys_of_mixed_kinds_are_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as error:
        manifest_of(tmp_path, "name: x\ndecision_log:\n  1: true\n  zz: 2\n")
    assert messages(error) == [
        "manifest.yaml:2: decision_log: unknown key 1 "
        "(expected context, entities, mask, drop, mask_secrets)"
    ]


def test_unknown_manifest_key_is_a_warning(tmp_path: Path) -> None:
    source = manifest_of(tmp_path, "name: x\nrevison: 3\n")
    assert [str(w) for w in source.warnings] == ["manifest.yaml:2: unknown key 'revison'"]
    assert source.revision.startswith("sha256:")


# --- revision ---------------------------------------------------------------------------


def test_revision_is_a_content_digest_without_manifest_revision(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path / "b",
        {"p.cedar": OWNER_READS, "orders.cedarschema": SCHEMA, "manifest.yaml": "name: x\n"},
    )
    first = read_bundle(root).revision
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", first)
    assert read_bundle(root).revision == first  # stable while nothing changes

    (root / "p.cedar~").write_text("an editor backup is not content")
    (root / ".p.cedar.swp").write_text("neither is a swap file")
    assert read_bundle(root).revision == first

    (root / "p.cedar").write_text(OWNER_READS + "\n")
    edited = read_bundle(root).revision
    assert edited != first

    (root / "p.cedar").rename(root / "q.cedar")  # same bytes, another path: another bundle
    assert read_bundle(root).revision not in (first, edited)


def test_manifest_revision_wins_over_digest(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path / "b", {"p.cedar": ALLOW_ALL, "manifest.yaml": "revision: release-42\n"}
    )
    assert load_bundle(root).revision == "release-42"
    (root / "p.cedar").write_text(ALLOW_ALL + "// changed\n")
    assert load_bundle(root).revision == "release-42"


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"p.cedar": ALLOW_ALL})
    os.symlink(root, root / "loop")
    assert sorted(read_bundle(root).files) == ["p.cedar"]
