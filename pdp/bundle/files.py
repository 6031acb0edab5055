"""Lists and reads a bundle's content files: links must resolve inside it, sizes come first."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from pdp.errors import FileReadError, Problem

MAX_FILE_BYTES = 32 * 1024 * 1024  # one content file
MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # all content files together
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ContentFile:
    """One content file as listed: its relative POSIX path and what `stat` said of it."""

    path: str
    real: str  # the resolved absolute path, inside the bundle's resolved root
    size: int
    device: int
    inode: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Listing:
    """The content files of a bundle, sorted by path, and the entries that cannot be read."""

    files: tuple[ContentFile, ...]
    problems: tuple[Problem, ...]


def is_ignored(name: str) -> bool:
    """Dot entries and editor temp files are never bundle content."""
    return (
        name.startswith(".")
        or name.endswith("~")
        or name.endswith((".swp", ".swo", ".swx", ".tmp"))
        or (name.startswith("#") and name.endswith("#"))
        or name == "4913"
    )


def scan_bundle(root: str | os.PathLike[str]) -> Listing:
    """Every content file under the directory `root`, with a located problem for each entry
    that is content but cannot be read.

    Symlinks are followed when they resolve inside the resolved `root` (a ConfigMap mount's
    `x -> ..data/x`, a git-sync root that is itself a link). A link that dangles, loops,
    cannot be resolved, leaves the bundle, or names neither a regular file nor a directory
    is a problem, never skipped: a skipped policy file would be a silent fail-open. Only
    `stat` is used here; nothing is read. A directory reached twice (a link to one read
    elsewhere, or to an ancestor) is listed once, at its own path when it has one.
    """
    top = os.path.realpath(root)
    files: list[ContentFile] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    plain: list[tuple[str, str]] = [(top, "")]  # directories in the tree itself
    linked: list[tuple[str, str]] = []  # directories reached through a link: after those
    while plain or linked:
        directory, rel_dir = plain.pop() if plain else linked.pop(0)
        if directory in seen:
            continue
        seen.add(directory)
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            where = rel_dir or os.fspath(root)
            problems.append(Problem(where, f"cannot list directory: {_why(exc)}"))
            continue
        for entry in entries:
            if is_ignored(entry.name):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if not _is_utf8(entry.name):
                problems.append(Problem(_shown(rel), "file name is not UTF-8"))
                continue
            found = _classify(entry, rel, top)
            if isinstance(found, Problem):
                problems.append(found)
            elif isinstance(found, ContentFile):
                files.append(found)
            elif entry.is_symlink():
                linked.append((found, rel))
            else:
                plain.append((found, rel))
    files.sort(key=lambda f: f.path)
    problems.sort(key=lambda p: p.file)
    return Listing(tuple(files), tuple(problems))


def _classify(entry: os.DirEntry[str], rel: str, top: str) -> ContentFile | Problem | str:
    """A file, a problem, or the resolved path of a directory to list."""
    link = entry.is_symlink()
    real = entry.path
    try:
        if link:
            real = os.path.realpath(entry.path, strict=True)
            if os.path.commonpath([top, real]) != top:
                return Problem(
                    rel,
                    f"symlink leaves the bundle directory{_target(entry.path)}; "
                    "links must resolve inside it",
                )
        info = os.stat(real, follow_symlinks=False)
    except OSError as exc:
        if not link:
            return Problem(rel, f"cannot read: {_why(exc)}")
        if exc.errno == errno.ELOOP:
            what = "symlink loop"
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            what = "dangling symlink, its target does not exist"
        else:
            what = f"symlink cannot be resolved ({_why(exc)})"
        return Problem(rel, f"{what}{_target(entry.path)}")
    if stat.S_ISDIR(info.st_mode):
        return real
    if stat.S_ISREG(info.st_mode):
        return ContentFile(rel, real, info.st_size, info.st_dev, info.st_ino, info.st_mtime_ns)
    kind = _kind(info.st_mode)
    if link:
        return Problem(rel, f"symlink to {kind}{_target(entry.path)}, not to a file or directory")
    return Problem(rel, f"{kind}, not a regular file")


def read_content(file: ContentFile, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a listed file, never more than `limit` + 1 of them in memory.

    Raises FileReadError when the file cannot be opened, is no longer the file that was
    listed (replaced meanwhile), or holds more than `limit` bytes (checked with `fstat`
    before reading, and again while reading, since a file can grow in between).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(file.real, flags)  # O_NONBLOCK: a FIFO swapped in must not hang us
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileReadError("file changed while the bundle was read") from None
        raise FileReadError(f"cannot read file: {_why(exc)}") from None
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (file.device, file.inode):
            raise FileReadError("file changed while the bundle was read")
        if not stat.S_ISREG(info.st_mode):
            raise FileReadError(f"{_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise FileReadError(too_large(info.st_size, limit))
        data = read_at_most(fd, limit)
    except OSError as exc:
        raise FileReadError(f"cannot read file: {_why(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileReadError(f"file is larger than the limit of {limit} bytes (it grew while read)")
    return data


def read_at_most(fd: int, limit: int) -> bytes:
    """Read `fd` to its end, but never more than `limit` + 1 bytes (one more shows it is over)."""
    chunks: list[bytes] = []
    remaining = limit + 1
    while remaining > 0:
        chunk = os.read(fd, min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> str:
    return f"file is larger than the limit of {limit} bytes ({size} bytes)"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _target(path: str) -> str:
    """` (-> TARGET)`: the link's own text, printable; empty when it cannot be read."""
    try:
        text = os.readlink(path)
    except OSError:
        return ""
    return f" (-> {_shown(text)})"


def _shown(text: str) -> str:
    """`text` with undecodable bytes and control characters escaped, safe for one log line."""
    raw = os.fsencode(text).decode("utf-8", "backslashreplace")
    if raw.isprintable():
        return raw
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in raw)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
