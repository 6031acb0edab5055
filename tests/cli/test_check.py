"""`pdp check BUNDLE`: exit codes and `file:line: message` output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.cli.main import main
from tests.support.bundles import OWNER_READS, SCHEMA, run_pdp, write_bundle
from tests.support.cli import run_cli
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import REPO


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


def test_a_policy_behind_a_dangling_link_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(
        tmp_path / "b",
        {"main.cedar": OWNER_READS, ".shared/guard.cedar": "forbid (principal, action, resource);"},
    )
    os.symlink(".shared/guard.cedar", root / "guard.cedar")
    assert main(["check", str(root)]) == 0
    capsys.readouterr()
    (root / ".shared" / "guard.cedar").unlink()
    assert main(["check", str(root)]) == 3
    assert capsys.readouterr().err.splitlines() == [
        "guard.cedar: dangling symlink, its target does not exist (-> .shared/guard.cedar)",
        f"error: bundle {root} does not load (1 problem(s))",
    ]


def test_a_link_out_of_the_bundle_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "shared.cedar").write_text("forbid (principal, action, resource);\n")
    root = write_bundle(tmp_path / "b", {"main.cedar": OWNER_READS})
    os.symlink("../shared.cedar", root / "guard.cedar")
    assert main(["check", str(root)]) == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        "guard.cedar: symlink leaves the bundle directory (-> ../shared.cedar); "
        "links must resolve inside it"
    )


def without_root_privileges() -> list[str]:
    """A command prefix under which file permissions apply, even when the tests run as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.slow  # the CLI end to end
def test_unreadable_files_and_folders_fail_the_check(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path / "b",
        {
            "main.cedar": OWNER_READS,
            "secret.cedar": "forbid (principal, action, resource);\n",
            "locked/guard.cedar": "forbid (principal, action, resource);\n",
            ".hidden/guard.cedar": "forbid (principal, action, resource);\n",
        },
    )
    os.symlink(".hidden/guard.cedar", root / "linked.cedar")
    (root / "secret.cedar").chmod(0)
    (root / "locked").chmod(0)
    (root / ".hidden").chmod(0)
    try:
        checked = subprocess.run(
            [*without_root_privileges(), sys.executable, "-m", "pdp", "check", str(root)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        for path in ("locked", ".hidden"):
            (root / path).chmod(0o755)
    assert checked.returncode == 3, checked.stdout
    assert checked.stderr.splitlines() == [
        "linked.cedar: symlink cannot be resolved (Permission denied) (-> .hidden/guard.cedar)",
        "locked: cannot list directory: Permission denied",
        "secret.cedar: cannot read file: Permission denied",
        f"error: bundle {root} does not load (3 problem(s))",
    ]


def test_a_huge_sparse_file_is_refused_by_its_size_without_reading_it(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"main.cedar": OWNER_READS})
    with open(root / "huge.cedar", "wb") as handle:
        handle.truncate(4 * 1024**3)
    checked = run_cli("check", str(root))
    assert checked.returncode == 3
    assert checked.stderr.splitlines() == [
        f"huge.cedar: file is larger than the limit of {32 * 1024 * 1024} bytes "
        f"({4 * 1024**3} bytes)",
        f"error: bundle {root} does not load (1 problem(s))",
    ]


@pytest.mark.slow  # the CLI end to end
@pytest.mark.parametrize("command", ["check", "test", "serve"])
def test_a_file_given_as_the_bundle_is_called_a_file_with_its_folder_as_a_hint(
    command: str,
) -> None:
    """`pdp serve` as a process (its log is JSON lines); check and test in this process (their
    processes: test_check_as_a_subprocess, tests/policytest/test_cli.py)."""
    routes = EXAMPLE_BUNDLE / "routes.yaml"
    if command == "serve":
        done = run_pdp(command, str(routes), "--listen", "127.0.0.1:0")
    else:
        done = run_cli(command, str(routes))
    assert done.returncode == 3
    expected = (
        f"{routes}: is a file, not a bundle directory (did you mean its directory, "
        f"{EXAMPLE_BUNDLE}?)"
    )
    if command == "serve":  # the server's stderr is JSON lines: the problem is in `errors`
        lines = [json.loads(line) for line in done.stderr.splitlines()]
        assert any(expected in line.get("errors", []) for line in lines), done.stderr
    else:
        assert expected in done.stderr.splitlines()
