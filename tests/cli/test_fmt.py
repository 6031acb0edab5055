"""`pdp fmt [--check] PATH...`: Cedar's formatter, in place or as a check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pdp.cli.main import main
from tests.support.bundles import EXAMPLE_BUNDLE, run_pdp, write_bundle

MESSY = (
    '@id("r")\npermit(principal,action==Action::"readOrder",resource)'
    "when{resource.owner==principal};\n"
)
TIDY = (
    '@id("r")\npermit (\n  principal,\n  action == Action::"readOrder",\n  resource\n)\n'
    "when { resource.owner == principal };\n"
)


def test_formatter_output_is_what_we_call_tidy() -> None:
    # Pins the cedarpy formatter the other tests rely on.
    import cedarpy

    assert cedarpy.format_policies(MESSY, 80, 2) == TIDY
    assert cedarpy.format_policies(TIDY, 80, 2) == TIDY


def test_check_lists_files_to_change_exits_1_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(tmp_path / "b", {"a/messy.cedar": MESSY, "tidy.cedar": TIDY})
    assert main(["fmt", "--check", str(root)]) == 1
    assert capsys.readouterr().out == f"{root / 'a/messy.cedar'}: would reformat\n"
    assert (root / "a/messy.cedar").read_text() == MESSY


def test_formats_in_place_then_check_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(tmp_path / "b", {"messy.cedar": MESSY, "tidy.cedar": TIDY})
    tidy = root / "tidy.cedar"
    os.utime(tidy, (1_000_000_000, 1_000_000_000))

    assert main(["fmt", str(root)]) == 0
    assert capsys.readouterr().out == f"{root / 'messy.cedar'}: reformatted\n"
    assert (root / "messy.cedar").read_text() == TIDY
    assert tidy.stat().st_mtime == 1_000_000_000  # a clean file is not rewritten

    assert main(["fmt", "--check", str(root)]) == 0
    assert capsys.readouterr().out == ""


def test_files_and_directories_mix_and_hidden_entries_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(
        tmp_path / "b",
        {
            ".git/old.cedar": MESSY,
            "..2026_11_30/p.cedar": MESSY,
            "sub/.hidden.cedar": MESSY,
            "sub/ok.cedar": TIDY,
            "notes.txt": "not cedar",
        },
    )
    single = write_bundle(tmp_path / "c", {"one.cedar": MESSY}) / "one.cedar"
    assert main(["fmt", "--check", str(root), str(single)]) == 1
    assert capsys.readouterr().out == f"{single}: would reformat\n"


def test_unparsable_file_is_reported_with_its_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = TIDY + "\npermit (principal, action resource);\n"
    root = write_bundle(tmp_path / "b", {"broken.cedar": broken, "messy.cedar": MESSY})
    assert main(["fmt", str(root)]) == 1
    out, err = capsys.readouterr()
    assert err == f"{root / 'broken.cedar'}:9:1: invalid policy: unexpected token `resource`\n"
    assert (root / "broken.cedar").read_text() == broken  # left alone
    assert out == f"{root / 'messy.cedar'}: reformatted\n"  # the others are still formatted


def test_fmt_as_a_subprocess(tmp_path: Path) -> None:
    clean = run_pdp("fmt", "--check", str(EXAMPLE_BUNDLE))
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "")

    root = write_bundle(tmp_path / "b", {"messy.cedar": MESSY})
    check = run_pdp("fmt", "--check", str(root))
    assert (check.returncode, check.stdout) == (1, f"{root / 'messy.cedar'}: would reformat\n")
    assert (run_pdp("fmt", str(root)).returncode, (root / "messy.cedar").read_text()) == (0, TIDY)


@pytest.mark.parametrize("flag", ["--line-width", "--indent-width"])
def test_negative_widths_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    root = write_bundle(tmp_path / "b", {"messy.cedar": MESSY})
    with pytest.raises(SystemExit) as usage:
        main(["fmt", "--check", flag, "-1", str(root)])
    assert usage.value.code == 2
    assert f"{flag}: must not be negative, not -1" in capsys.readouterr().err


def test_brackets_nested_past_the_parser_stack_are_reported_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = "(" * 1000 + "true" + ")" * 1000
    root = write_bundle(
        tmp_path / "b",
        {"deep.cedar": f"permit (principal, action, resource) when {{ {nested} }};\n"},
    )
    assert main(["fmt", "--check", str(root)]) == 1  # cedarpy would have died with SIGSEGV
    assert capsys.readouterr().err == (
        f"{root / 'deep.cedar'}:1:244: invalid policy: brackets nested more than 200 levels deep\n"
    )
