"""`pdp fmt [--check] PATH...`: Cedar's formatter, in place or as a check."""

from __future__ import annotations

import os
from pathlib import Path

import cedarpy
import pytest

from pdp.bundle.locate import line_comments
from pdp.cli.main import main
from tests.support.bundles import run_pdp, write_bundle
from tests.support.cli import run_cli
from tests.support.paths import EXAMPLE_BUNDLE

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
    clean = run_cli("fmt", "--check", str(EXAMPLE_BUNDLE))  # exit 0 as a process: just below
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
    assert f"{flag}: must be a whole number from" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    "text",
    [
        "// only a comment\n// and another, without a policy\n",
        "// no newline at the end",
        "  \n\n\t\n",
        "",
        "// a header\n\n\n// a note far below\n",
    ],
    ids=["comments", "comment-without-newline", "whitespace", "empty", "spaced-comments"],
)
def test_a_file_without_policies_is_left_exactly_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    root = write_bundle(tmp_path / "b", {"notes.cedar": text})
    path = root / "notes.cedar"
    os.utime(path, (1_000_000_000, 1_000_000_000))
    assert main(["fmt", "--check", str(root)]) == 0
    assert main(["fmt", str(root)]) == 0
    assert capsys.readouterr() == ("", "")
    assert path.read_bytes() == text.encode()
    assert path.stat().st_mtime == 1_000_000_000


def test_trailing_and_inner_comments_survive_formatting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "// header\n"
        '@id("r") // after the annotation\n'
        "permit(principal, // who\n"
        '  action == Action::"readOrder", resource)\n'
        'when { resource.owner == principal && context.note != "// not a comment" }; // tail\n'
        "\n"
        "// trailing one\n"
        "// trailing two\n"
    )
    root = write_bundle(tmp_path / "b", {"p.cedar": text})
    assert main(["fmt", str(root)]) == 0
    assert capsys.readouterr().out == f"{root / 'p.cedar'}: reformatted\n"
    formatted = (root / "p.cedar").read_text()
    assert formatted != text
    assert [c for _, c in line_comments(formatted)] == [
        "// header",
        "// after the annotation",
        "// who",
        "// tail",
        "// trailing one",
        "// trailing two",
    ]
    assert '"// not a comment"' in formatted
    assert main(["fmt", "--check", str(root)]) == 0  # and it is stable


def test_a_formatter_that_would_drop_a_comment_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cedar's formatter keeps every comment we could place; this stands in for a future one
    # that does not, to show the guard: the real output, minus its last comment line.
    real = cedarpy.format_policies

    def dropping(text: str, line_width: int, indent_width: int) -> str:
        lines = real(text, line_width, indent_width).splitlines(keepends=True)
        comments = [i for i, line in enumerate(lines) if line.lstrip().startswith("//")]
        if comments:
            del lines[comments[-1]]
        return "".join(lines)

    monkeypatch.setattr(cedarpy, "format_policies", dropping)
    text = MESSY + "// keep me\n"
    root = write_bundle(tmp_path / "b", {"p.cedar": text, "messy.cedar": MESSY})
    assert main(["fmt", str(root)]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"{root / 'p.cedar'}:3: not reformatted: Cedar's formatter would drop or move the "
        "comment '// keep me'; format this file by hand\n"
    )
    assert out == f"{root / 'messy.cedar'}: reformatted\n"
    assert (root / "p.cedar").read_text() == text  # untouched


def test_a_huge_file_is_refused_by_its_size_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(tmp_path / "b", {"messy.cedar": MESSY})
    with open(root / "huge.cedar", "wb") as handle:
        handle.truncate(2 * 1024**3)
    assert main(["fmt", "--check", str(root)]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"{root / 'huge.cedar'}: cannot read: file is larger than the limit of "
        f"{32 * 1024 * 1024} bytes (2147483648 bytes)\n"
    )
    assert out == f"{root / 'messy.cedar'}: would reformat\n"
