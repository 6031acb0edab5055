"""`pdp check BUNDLE`: exit codes and `file:line: message` output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pdp.cli.main import main
from tests.support.bundles import EXAMPLE_BUNDLE, OWNER_READS, SCHEMA, run_pdp, write_bundle


def test_valid_bundle_exits_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(
        tmp_path / "b",
        {
            "orders.cedarschema": SCHEMA,
            "p.cedar": OWNER_READS,
            "manifest.yaml": "name: shop\nrevision: r7\n",
        },
    )
    assert main(["check", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "ok: shop r7: 1 policies, 0 template links, 2 entities, with schema (validation strict)\n"
    )
    assert err == ""


def test_problems_exit_3_one_located_line_each_sorted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(
        tmp_path / "b",
        {
            "orders.cedarschema": SCHEMA,
            "z.cedar": "permit (principal, action, resource)\n",
            "a.cedar": OWNER_READS + "\npermit (principal, action resource);\n",
            "entities.json": (
                '[\n  {"uid": {"type": "Tennant", "id": "x"}, "attrs": {}, "parents": []}\n]'
            ),
            "entity.json": "[]",
        },
    )
    assert main(["check", str(root)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "a.cedar:9:1: invalid policy: unexpected token `resource`",
        'entities.json:2: entity Tennant::"x": error during entity deserialization '
        "(entity type Tennant is not declared in the schema)",
        "z.cedar:1:1: invalid policy: unexpected end of input",
        "entity.json: unknown file, ignored (did you mean entities.json?) [warning]",
        f"error: bundle {root} does not load (3 problem(s))",
    ]


def test_warnings_do_not_fail_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_bundle(tmp_path / "b", {"p.cedar": OWNER_READS, "entity.json": "[]"})
    assert main(["check", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: b sha256:")
    assert err == "entity.json: unknown file, ignored (did you mean entities.json?) [warning]\n"


def test_missing_bundle_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope")]) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'nope'}: bundle directory does not exist",
        f"error: bundle {tmp_path / 'nope'} does not load (1 problem(s))",
    ]


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check"])
    assert exit_.value.code == 2
    assert "the following arguments are required: bundle" in capsys.readouterr().err


def test_check_as_a_subprocess(tmp_path: Path) -> None:
    ok = run_pdp("check", str(EXAMPLE_BUNDLE))
    assert (ok.returncode, ok.stderr) == (0, "")
    assert re.fullmatch(
        r"ok: orders-api sha256:[0-9a-f]{16}: \d+ policies, \d+ template links, \d+ entities, "
        r"with schema \(validation strict\)\n",
        ok.stdout,
    )

    root = write_bundle(tmp_path / "b", {"a.cedar": OWNER_READS, "b.cedar": OWNER_READS})
    bad = run_pdp("check", str(root))
    assert bad.returncode == 3
    assert bad.stderr.splitlines() == [
        "b.cedar:1: duplicate policy id 'owner-reads' (first defined at a.cedar:1)",
        f"error: bundle {root} does not load (1 problem(s))",
    ]
