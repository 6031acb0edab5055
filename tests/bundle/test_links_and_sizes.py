"""Listing and reading bundle files: links stay inside the bundle, sizes are checked by `stat`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from pdp.bundle.files import (
    MAX_BUNDLE_BYTES,
    MAX_FILE_BYTES,
    FileReadError,
    read_at_most,
    read_content,
    scan_bundle,
)
from pdp.bundle.loader import read_bundle
from pdp.errors import BundleError
from pdp.live.reload import bundle_present
from pdp.live.watcher import fingerprint
from tests.support.bundles import ALLOW_ALL, GUARD, guarded_bundle, write_bundle
from tests.support.server import REPO


def problems_of(root: Path) -> list[str]:
    with pytest.raises(BundleError) as raised:
        read_bundle(root)
    return [str(p) for p in raised.value.problems]


def test_a_policy_behind_a_link_that_starts_dangling_is_an_error_not_a_dropped_forbid(
    tmp_path: Path,
) -> None:
    root = guarded_bundle(tmp_path / "b")
    before = load_bundle(root)
    assert sorted(p.id for p in before.policies) == ["allow-all", "guard"]

    (root / ".shared" / "guard.cedar").unlink()
    assert problems_of(root) == [
        "guard.cedar: dangling symlink, its target does not exist (-> .shared/guard.cedar)"
    ]
    assert bundle_present(root)  # a broken bundle is there: it is reported, not waited for


def make_fifo(root: Path, name: str) -> None:
    os.mkfifo(root / name)


def make_socket(root: Path, name: str) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / name))
    sock.close()  # the socket file stays


def link(target: str, name: str) -> Callable[[Path], None]:
    return lambda root: os.symlink(target, root / name)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            link("missing/guard.cedar", "guard.cedar"),
            "guard.cedar: dangling symlink, its target does not exist (-> missing/guard.cedar)",
            id="dangling-through-a-missing-folder",
        ),
        pytest.param(
            link("main.cedar/x", "x.cedar"),
            "x.cedar: dangling symlink, its target does not exist (-> main.cedar/x)",
            id="through-a-file",
        ),
        pytest.param(
            link("x.cedar", "x.cedar"), "x.cedar: symlink loop (-> x.cedar)", id="self-loop"
        ),
        pytest.param(
            lambda root: (link("b.cedar", "a.cedar")(root), link("a.cedar", "b.cedar")(root)),
            "a.cedar: symlink loop (-> b.cedar)\nb.cedar: symlink loop (-> a.cedar)",
            id="two-link-loop",
        ),
        pytest.param(
            link("../outside.cedar", "outside.cedar"),
            "outside.cedar: symlink leaves the bundle directory (-> ../outside.cedar); "
            "links must resolve inside it",
            id="file-outside",
        ),
        pytest.param(
            link("../outside", "shared"),
            "shared: symlink leaves the bundle directory (-> ../outside); "
            "links must resolve inside it",
            id="directory-outside",
        ),
        pytest.param(
            link("/dev/null", "null.cedar"),
            "null.cedar: symlink leaves the bundle directory (-> /dev/null); "
            "links must resolve inside it",
            id="device-outside",
        ),
        pytest.param(
            lambda root: make_fifo(root, "pipe.cedar"),
            "pipe.cedar: a FIFO, not a regular file",
            id="fifo",
        ),
        pytest.param(
            lambda root: (make_fifo(root, ".pipe"), link(".pipe", "pipe.cedar")(root)),
            "pipe.cedar: symlink to a FIFO (-> .pipe), not to a file or directory",
            id="link-to-fifo",
        ),
        pytest.param(
            lambda root: make_socket(root, "s.cedar"),
            "s.cedar: a socket, not a regular file",
            id="socket",
        ),
        pytest.param(
            link("gone\n\x1b[2Jx", "odd.cedar"),
            "odd.cedar: dangling symlink, its target does not exist (-> gone\\n\\x1b[2Jx)",
            id="control-characters-in-the-target-are-escaped",
        ),
    ],
)
def test_content_entries_that_cannot_be_read_are_located_errors(
    tmp_path: Path, make: Callable[[Path], None], expected: str
) -> None:
    (tmp_path / "outside.cedar").write_text(ALLOW_ALL)
    write_bundle(tmp_path / "outside", {"x.cedar": ALLOW_ALL})
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL})
    make(root)
    assert problems_of(root) == expected.split("\n")


def test_a_file_name_that_is_not_utf8_is_an_error_not_a_crash(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL})
    with open(os.path.join(os.fsencode(root), b"b\xff.cedar"), "wb") as handle:
        handle.write(GUARD.encode())
    assert problems_of(root) == ["b\\xff.cedar: file name is not UTF-8"]


def test_dot_entries_and_temp_files_that_are_dangling_links_stay_ignored(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL})
    os.symlink("alice@host.1234:1700000000", root / ".#main.cedar")  # an Emacs lock file
    os.symlink("nowhere", root / "main.cedar~")
    os.symlink("../../etc", root / ".git")
    os.symlink("loop.swp", root / "loop.swp")
    assert sorted(read_bundle(root).files) == ["main.cedar"]
    only_locks = tmp_path / "locks"
    only_locks.mkdir()
    os.symlink("alice@host.1234:1700000000", only_locks / ".#main.cedar")
    assert not bundle_present(only_locks)  # nothing there yet: still waiting for a bundle


def test_links_that_stay_inside_load_from_a_symlinked_root(tmp_path: Path) -> None:
    """git-sync: the root is a link; inside, links into hidden folders and back up are fine."""
    rev = write_bundle(
        tmp_path / "rev-1",
        {
            "main.cedar": ALLOW_ALL,
            ".lib/guard.cedar": GUARD,
            ".common/x.cedar": '@id("x")\nforbid (principal, action, resource) when { false };\n',
            "orders/read.cedar": '@id("r")\npermit (principal, action, resource);\n',
        },
    )
    os.symlink(".lib/guard.cedar", rev / "guard.cedar")
    os.symlink(".common", rev / "shared")  # a directory link, read under its own name
    os.symlink("../.lib/guard.cedar", rev / "orders" / "guard-too.txt")
    os.symlink(str(tmp_path / "current" / "main.cedar"), rev / "abs.txt")  # through the root
    os.symlink("rev-1", tmp_path / "current")

    source = read_bundle(tmp_path / "current")
    assert sorted(source.files) == [
        "abs.txt",
        "guard.cedar",
        "main.cedar",
        "orders/guard-too.txt",
        "orders/read.cedar",
        "shared/x.cedar",
    ]
    assert source.files["shared/x.cedar"].startswith('@id("x")')


def test_a_directory_reached_twice_is_read_once_at_its_own_path(tmp_path: Path) -> None:
    root = write_bundle(
        tmp_path / "b",
        {"main.cedar": ALLOW_ALL, "z/read.cedar": "permit (principal, action, resource);\n"},
    )
    os.symlink("z", root / "a")  # sorts before z: still read as z/, its own path
    os.symlink(".", root / "self")  # a loop back to the root
    os.symlink("..", root / "z" / "up")  # and to an ancestor
    assert sorted(read_bundle(root).files) == ["main.cedar", "z/read.cedar"]


def test_fingerprint_sees_a_link_that_starts_dangling(tmp_path: Path) -> None:
    root = guarded_bundle(tmp_path / "b")
    before = fingerprint(root)
    (root / ".shared" / "guard.cedar").unlink()  # hidden: no file the listing reads changed
    after = fingerprint(root)
    assert after != before
    assert ("guard.cedar", "error", problems_of(root)[0].split(": ", 1)[1]) in after


def measure_read_bundle(root: Path) -> tuple[int, list[str]]:
    """Peak RSS growth (KiB) of `read_bundle(root)` in a fresh process, and its problems."""
    script = (
        "import json, resource, sys\n"
        "from pdp.bundle.loader import read_bundle\n"
        "from pdp.errors import BundleError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    read_bundle(sys.argv[1])\n"
        "    problems = []\n"
        "except BundleError as exc:\n"
        "    problems = [str(p) for p in exc.problems]\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps([after - before, problems]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    growth, problems = json.loads(done.stdout)
    return growth, problems


def test_a_multi_gigabyte_sparse_file_is_refused_without_being_read(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL})
    with open(root / "huge.cedar", "wb") as handle:
        handle.truncate(2 * 1024**3)  # 2 GiB of holes: no disk, all memory
    growth_kib, problems = measure_read_bundle(root)
    assert problems == [
        f"huge.cedar: file is larger than the limit of {MAX_FILE_BYTES} bytes (2147483648 bytes)"
    ]
    assert growth_kib < 32 * 1024, f"reading grew the process by {growth_kib} KiB"


def test_a_bundle_over_the_total_limit_is_refused_before_any_file_is_read(
    tmp_path: Path,
) -> None:
    per_file = MAX_FILE_BYTES - 1024  # each under the per-file limit
    count = MAX_BUNDLE_BYTES // per_file + 1
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL})
    (root / "bad.txt").write_bytes(b"\xff")  # would be a UTF-8 error, were anything read
    for i in range(count):
        with open(root / f"notes-{i}.txt", "wb") as handle:
            handle.truncate(per_file)
    growth_kib, problems = measure_read_bundle(root)
    total = count * per_file + len(ALLOW_ALL) + 1
    assert problems == [
        f"{root}: bundle is larger than the limit of {MAX_BUNDLE_BYTES} bytes in total "
        f"({total} bytes in {count + 2} files)"
    ]
    assert growth_kib < 32 * 1024, f"reading grew the process by {growth_kib} KiB"


def test_a_file_that_grows_after_it_was_listed_is_refused_by_fstat(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL})
    [listed] = scan_bundle(root).files
    os.truncate(root / "main.cedar", 2 * 1024**3)  # grows between the listing and the read
    with pytest.raises(FileReadError) as raised:
        read_content(listed)
    assert str(raised.value) == (
        f"file is larger than the limit of {MAX_FILE_BYTES} bytes (2147483648 bytes)"
    )


def test_a_file_replaced_after_it_was_listed_is_not_read_in_its_place(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"main.cedar": ALLOW_ALL, ".other": GUARD})
    [listed] = scan_bundle(root).files
    os.replace(root / ".other", root / "main.cedar")  # another inode now
    with pytest.raises(FileReadError, match="file changed while the bundle was read"):
        read_content(listed)


def test_reads_stop_one_byte_past_the_limit_however_much_more_there_is() -> None:
    limit = 1000
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x" * (limit + 500))  # fits the pipe buffer
        os.close(write_end)
        write_end = -1
        assert len(read_at_most(read_end, limit)) == limit + 1
        assert len(os.read(read_end, 10_000)) == 499  # the rest was never read
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_a_file_at_the_limit_loads(tmp_path: Path) -> None:
    padding = "// " + "x" * 76 + "\n"
    text = ALLOW_ALL + padding * ((MAX_FILE_BYTES - len(ALLOW_ALL)) // len(padding))
    text += " " * (MAX_FILE_BYTES - len(text))
    root = write_bundle(tmp_path / "b", {"main.cedar": text})
    assert os.path.getsize(root / "main.cedar") == MAX_FILE_BYTES
    assert read_bundle(root).files["main.cedar"] == text
    with open(root / "main.cedar", "a") as handle:
        handle.write(" ")
    with pytest.raises(BundleError):
        read_bundle(root)
