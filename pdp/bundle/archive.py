"""Bundle archives: a deterministic tar.gz of a bundle's files, and a hostile-proof reader.

An archive holds the bundle's content files (sorted, mode 0644, owner 0, mtime 0) and, when
signed, `.signatures.json` (see pdp/bundle/signing.py). Reading one never trusts a header:
the gzip stream is inflated with a running count, every member is checked (regular files
and directories only, a relative path without `..`, no duplicates) and measured while read.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import PurePosixPath

from pdp.bundle.files import MAX_BUNDLE_BYTES, MAX_FILE_BYTES
from pdp.errors import ArchiveError

SIGNATURES = ".signatures.json"
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # compressed, as fetched or read from disk
MAX_MEMBERS = 10_000
MAX_NAME_BYTES = 1024
_TAR_OVERHEAD = 2048  # header (+ a possible long-name or pax header) per member
_CHUNK = 256 * 1024
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)


def build_archive(files: Mapping[str, bytes]) -> bytes:
    """The tar.gz of `files` (relative POSIX path -> bytes): the same files give the same bytes.

    Only names and contents count: no mtime, owner, mode or file name goes into the output.
    """
    for name in files:
        check_name(name)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files, key=_order):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _order(name: str) -> tuple[int, str]:
    """The signature file first, then the content files by name."""
    return (0 if name == SIGNATURES else 1, name)


def read_archive(data: bytes, where: str = "archive") -> dict[str, bytes]:
    """Every file of the tar.gz `data`, by its relative path (insertion in archive order).

    Raises ArchiveError naming the member (or `where`) when the archive is over a limit,
    not a single gzip stream, not a tar, or holds anything but regular files and
    directories under safe relative names, or the same name twice.
    """
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError.at(where, f"archive is larger than {MAX_ARCHIVE_BYTES} bytes")
    tar_bytes = _inflate(data, where)
    files: dict[str, bytes] = {}
    directories: set[str] = set()
    total = 0
    try:
        tar = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:")  # noqa: SIM115 (with below)
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError.at(where, f"not a tar archive: {exc}") from None
    with tar:
        count = 0
        while True:
            try:
                member = tar.next()
            except (tarfile.TarError, EOFError, ValueError, UnicodeError) as exc:
                raise ArchiveError.at(where, f"corrupt tar archive: {exc}") from None
            if member is None:
                break
            count += 1
            if count > MAX_MEMBERS:
                raise ArchiveError.at(where, f"archive has more than {MAX_MEMBERS} members")
            name = _member_name(member.name, where)
            if name is None:  # "." or "./": the archive's own root
                if not member.isdir():
                    raise ArchiveError.at(where, "member '.' is not a directory")
                continue
            if name in files or name in directories:
                raise ArchiveError.at(name, "appears twice in the archive")
            if member.isdir() and member.type == tarfile.DIRTYPE:
                directories.add(name)
                continue
            if member.type not in _FILE_TYPES or member.sparse is not None:
                raise ArchiveError.at(name, f"is {_kind(member)}; an archive holds only files")
            if member.size > MAX_FILE_BYTES:
                raise ArchiveError.at(name, f"is larger than {MAX_FILE_BYTES} bytes")
            total += member.size
            if total > MAX_BUNDLE_BYTES:
                raise ArchiveError.at(where, f"files add up to more than {MAX_BUNDLE_BYTES} bytes")
            content = _read_member(tar, member, name)
            files[name] = content
    for name in files:  # a file is not also a folder ("a" and "a/b")
        for parent in PurePosixPath(name).parents:
            if str(parent) in files:
                raise ArchiveError.at(name, f"is inside {parent}, which is a file")
    return files


def _inflate(data: bytes, where: str) -> bytes:
    """The gzip stream's content, counted while inflating: a bomb stops at the limit."""
    limit = MAX_BUNDLE_BYTES + (MAX_MEMBERS + 2) * _TAR_OVERHEAD
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip only, one member
    out = bytearray()
    pending = data
    try:
        while pending and not inflater.eof:
            chunk = inflater.decompress(pending, _CHUNK)
            out += chunk
            if len(out) > limit:
                raise ArchiveError.at(where, f"archive inflates to more than {limit} bytes")
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            raise ArchiveError.at(where, "gzip stream is truncated")
    except zlib.error as exc:
        raise ArchiveError.at(where, f"not a gzip stream: {exc}") from None
    if inflater.unused_data:
        raise ArchiveError.at(where, "data after the end of the gzip stream")
    return bytes(out)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> bytes:
    stream = tar.extractfile(member)
    if stream is None:
        raise ArchiveError.at(name, "cannot be read")
    try:
        content = stream.read(member.size + 1)
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError.at(name, f"cannot be read: {exc}") from None
    if len(content) != member.size:
        raise ArchiveError.at(name, f"holds {len(content)} bytes, its header says {member.size}")
    return content


def _member_name(raw: str, where: str) -> str | None:
    """The member's relative path, checked; None for the archive root itself."""
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/") if name.endswith("/") else name
    if name in ("", "."):
        return None
    check_name(name)
    return name


def check_name(name: str) -> None:
    """Refuse a path that is absolute, climbs (`..`), is not plain UTF-8, or is not canonical."""
    shown = name.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ArchiveError.at(shown[:80], f"name is longer than {MAX_NAME_BYTES} bytes")
    if name.startswith("/"):
        raise ArchiveError.at(shown, "absolute path in the archive")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in name):
        raise ArchiveError.at(shown, "name holds a control character or a backslash")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError.at(shown, "name is not UTF-8") from None
    parts = name.split("/")
    if ".." in parts:
        raise ArchiveError.at(shown, "path climbs out of the bundle (..)")
    if "" in parts or "." in parts:
        raise ArchiveError.at(shown, "path is not canonical (empty or '.' segment)")


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symlink (-> {member.linkname!r})"
    if member.islnk():
        return f"a hard link (-> {member.linkname!r})"
    if member.isdev():
        return "a device or FIFO"
    if member.sparse is not None:
        return "a sparse file"
    return f"a member of tar type {member.type!r}"


def write_tree(files: Mapping[str, bytes], parent: str | None = None, name: str = "bundle") -> str:
    """Write `files` into a fresh private directory (0700) and return the bundle root in it.

    `files` must come from `read_archive` (names checked). Nothing is followed or replaced:
    every file is created new with O_EXCL | O_NOFOLLOW.
    """
    base = tempfile.mkdtemp(prefix="pdp-bundle-", dir=parent)
    root = os.path.join(base, _safe_dirname(name))
    os.mkdir(root, 0o700)
    for rel, data in files.items():
        check_name(rel)
        path = os.path.join(root, *rel.split("/"))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    return root


def _safe_dirname(name: str) -> str:
    """An archive's file name without `.tar.gz`/`.tgz`, as a plain folder name for the bundle."""
    for suffix in (".tar.gz", ".tgz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "bundle"


def read_archive_file(path: str) -> bytes:
    """The bytes of the archive file at `path`, never more than MAX_ARCHIVE_BYTES + 1 read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_ARCHIVE_BYTES + 1)
    except OSError as exc:
        raise ArchiveError.at(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError.at(path, f"archive is larger than {MAX_ARCHIVE_BYTES} bytes")
    return data


def write_file_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `path` through a temporary file in its folder and one rename: never half-written."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".pdp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
