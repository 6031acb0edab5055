"""Bundle archives: deterministic builds, and hostile archives refused with the member named."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path

import pytest

from pdp.bundle import archive, load_bundle
from pdp.bundle.archive import build_archive, read_archive, write_tree
from pdp.bundle.loader import read_bundle
from pdp.bundle.package import open_archive, pack
from pdp.errors import ArchiveError, BundleError
from tests.support.archives import Member, raw_archive, raw_tar
from tests.support.paths import EXAMPLE_BUNDLE


def refused(data: bytes) -> str:
    """The problems `read_archive` raises for `data`, as text."""
    with pytest.raises(ArchiveError) as caught:
        read_archive(data)
    return str(caught.value)


# --- deterministic builds -----------------------------------------------------------------


def test_same_contents_give_the_same_bytes_whatever_mtimes_modes_and_paths(
    tmp_path: Path,
) -> None:
    first = tmp_path / "first"
    second = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(EXAMPLE_BUNDLE, first)
    shutil.copytree(EXAMPLE_BUNDLE, second)
    for path in second.rglob("*"):
        if path.is_file():
            os.utime(path, (1_000_000, 1_000_000))
            path.chmod(0o600)
    (second / "baseline.cedar").chmod(0o755)  # an executable bit does not count either
    one, two = pack(read_bundle(first)), pack(read_bundle(second))
    assert one == two
    assert read_bundle(first).revision == open_archive(two, None).source.revision


def test_an_archive_member_is_plain_whatever_the_source(tmp_path: Path) -> None:
    data = pack(read_bundle(EXAMPLE_BUNDLE))
    with tarfile.open(fileobj=__import__("io").BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (0o644, 0, 0, 0, "", "")
    }
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0, no file name stored
    assert data[3] & 0x08 == 0


def test_changed_content_changes_bytes_and_revision(tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(EXAMPLE_BUNDLE, copy)
    before = pack(read_bundle(copy))
    (copy / "manifest.yaml").write_text(
        (copy / "manifest.yaml").read_text().replace("revision", "# revision")
    )
    assert pack(read_bundle(copy)) != before


def test_an_archive_round_trips_to_the_same_bundle() -> None:
    opened = open_archive(pack(read_bundle(EXAMPLE_BUNDLE)), None, name="orders.tar.gz")
    direct = load_bundle(EXAMPLE_BUNDLE)
    assert opened.source.files == direct.source.files
    assert opened.source.digest == direct.source.digest
    assert not os.path.exists(opened.source.root)  # the private copy is gone


def test_extraction_is_private_and_creates_nothing_outside(tmp_path: Path) -> None:
    root = write_tree({"a/b.cedar": b"x", "c.cedar": b"y"}, parent=str(tmp_path))
    base = Path(root).parent
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    assert stat.S_IMODE((Path(root) / "a" / "b.cedar").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [base.name]


# --- hostile archives ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (Member("link.cedar", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "a symlink"),
        (Member("in.cedar", type=tarfile.SYMTYPE, linkname="other.cedar"), "a symlink"),
        (Member("hard.cedar", type=tarfile.LNKTYPE, linkname="p.cedar"), "a hard link"),
        (Member("dev", type=tarfile.CHRTYPE), "a device or FIFO"),
        (Member("blk", type=tarfile.BLKTYPE), "a device or FIFO"),
        (Member("fifo", type=tarfile.FIFOTYPE), "a device or FIFO"),
        (Member("cont.cedar", type=tarfile.CONTTYPE, data=b"x"), "tar type"),
    ],
    ids=["symlink-out", "symlink-in", "hardlink", "chardev", "blockdev", "fifo", "contiguous"],
)
def test_only_regular_files_and_directories(member: Member, expected: str) -> None:
    data = raw_archive([Member("p.cedar", b"permit(principal,action,resource);"), member])
    message = refused(data)
    assert member.name in message and expected in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/etc/cron.d/x", "absolute path"),
        ("../escape.cedar", "climbs out"),
        ("a/../../escape.cedar", "climbs out"),
        ("a/..", "climbs out"),
        ("a//b.cedar", "not canonical"),
        ("a/./b.cedar", "not canonical"),
        ("a\\..\\b.cedar", "backslash"),
        ("nl\nname.cedar", "control character"),
    ],
)
def test_unsafe_names_are_refused(name: str, expected: str) -> None:
    assert expected in refused(raw_archive([Member(name, b"x")]))


def test_a_pax_path_cannot_smuggle_a_climbing_name() -> None:
    data = raw_archive([Member("innocent.cedar", b"x", pax={"path": "../../evil.cedar"})])
    assert "climbs out" in refused(data)


def test_a_gnu_long_name_is_checked_too() -> None:
    long = "../" + "d/" * 80 + "evil.cedar"
    assert "climbs out" in refused(raw_archive([Member(long, b"x")], fmt=tarfile.GNU_FORMAT))


def test_a_leading_dot_slash_is_accepted_as_tar_writes_it() -> None:
    data = raw_archive(
        [
            Member("./", type=tarfile.DIRTYPE),
            Member("./a", type=tarfile.DIRTYPE),
            Member("./a/p.cedar", b"x"),
        ]
    )
    assert read_archive(data) == {"a/p.cedar": b"x"}


def test_duplicate_names_are_refused() -> None:
    data = raw_archive([Member("p.cedar", b"permit"), Member("./p.cedar", b"forbid")])
    assert "p.cedar: appears twice" in refused(data)


def test_a_file_cannot_also_be_a_folder() -> None:
    assert "which is a file" in refused(raw_archive([Member("a", b"x"), Member("a/b.cedar", b"")]))
    data = raw_archive([Member("a", type=tarfile.DIRTYPE), Member("a", b"x")])
    assert "appears twice" in refused(data)


def test_member_count_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    data = raw_archive([Member(f"p{i}.cedar", b"x") for i in range(6)])
    assert "more than 5 members" in refused(data)
    assert len(read_archive(raw_archive([Member(f"p{i}.cedar") for i in range(5)]))) == 5


def test_a_file_over_the_limit_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_FILE_BYTES", 100)
    assert "big.cedar: is larger than 100 bytes" in refused(
        raw_archive([Member("big.cedar", b"x" * 101)])
    )


def test_total_size_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_BUNDLE_BYTES", 1000)
    data = raw_archive([Member(f"p{i}.cedar", b"x" * 300) for i in range(4)])
    assert "more than 1000 bytes" in refused(data)


def test_a_header_claiming_more_than_it_holds_is_refused() -> None:
    raw = raw_tar([Member("p.cedar", b"x" * 600, size=600)])
    truncated = raw[: 512 + 100]  # the header and 100 of its 600 bytes, then nothing
    message = refused(gzip.compress(truncated))
    assert "p.cedar" in message


def test_a_header_claiming_a_huge_size_never_allocates_it() -> None:
    raw = raw_tar([Member("p.cedar", b"x" * 10, size=2**40)])
    assert "p.cedar: is larger than" in refused(gzip.compress(raw))


def test_a_header_claiming_less_than_it_holds_cannot_smuggle_a_member() -> None:
    # The hidden bytes are read as the next header: a garbage header ends the archive, a
    # real one is a member like any other and gets every check.
    hidden = raw_tar([Member("../evil.cedar", b"bad")])[:1024]
    raw = raw_tar([Member("p.cedar", b"x" * 512 + hidden, size=512)])
    assert "climbs out" in refused(gzip.compress(raw))


def test_a_gzip_bomb_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_BUNDLE_BYTES", 1_000_000)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 10)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()  # 200 MiB
    assert len(bomb) < 300_000
    assert "inflates to more than" in refused(bomb)


def test_the_compressed_size_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 1000)
    assert "larger than 1000 bytes" in refused(os.urandom(1001))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "truncated"),
        (b"not gzip at all", "not a gzip stream"),
        (gzip.compress(b"not a tar" * 100), "not a tar archive"),
        (gzip.compress(raw_tar([Member("p.cedar", b"x")]))[:-10], "truncated"),
        (gzip.compress(raw_tar([Member("p.cedar", b"x")])) + b"junk", "after the end"),
        (
            gzip.compress(raw_tar([Member("p.cedar", b"x")]))
            + gzip.compress(raw_tar([Member("q.cedar", b"y")])),
            "after the end",
        ),
    ],
    ids=["empty", "not-gzip", "not-tar", "truncated-gzip", "trailing-junk", "two-gzip-members"],
)
def test_malformed_archives_are_refused(data: bytes, expected: str) -> None:
    assert expected in refused(data)


def test_sparse_members_are_refused() -> None:
    data = raw_archive(
        [Member("s.cedar", b"x", type=tarfile.GNUTYPE_SPARSE)], fmt=tarfile.GNU_FORMAT
    )
    assert "s.cedar" in refused(data)


def test_the_bundle_reader_still_applies_its_own_rules() -> None:
    data = build_archive({"p.cedar": b"\xff\xfe not utf-8"})
    with pytest.raises(BundleError) as caught:
        open_archive(data, None)
    assert "p.cedar: file is not UTF-8" in str(caught.value)


def test_build_refuses_unsafe_names() -> None:
    with pytest.raises(ArchiveError, match="climbs out"):
        build_archive({"../x.cedar": b""})
