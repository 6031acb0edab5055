"""Where decision log lines go: one descriptor, O_APPEND, whole lines, one write per batch."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import sys

# How many bytes of whole lines go into one write. A regular file opened O_APPEND takes each
# write whole (the kernel appends it under the inode's lock), so several processes sharing
# a file never interleave within a batch; a pipe, FIFO or terminal only promises that for
# writes of up to PIPE_BUF bytes, so batches to those stay within it.
FILE_BATCH_BYTES = 256 * 1024
PIPE_BATCH_BYTES = select.PIPE_BUF


class Sink:
    """A file descriptor the writer thread owns: O_APPEND, one `os.write` per batch of lines.

    `batch_bytes` is the most a batch of several lines may hold on this descriptor (a single
    longer line is still written alone, as one write).
    """

    batch_bytes = PIPE_BATCH_BYTES

    def __init__(
        self, name: str, fd: int | None = None, path: str | None = None, owned: bool = True
    ) -> None:
        self.name = name
        self._fd = fd
        self._path = path  # opened by the writer thread: a FIFO with no reader yet blocks
        self._owned = owned

    def open(self) -> None:
        if self._fd is None and self._path is not None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        if self._fd is not None:
            self.batch_bytes = batch_bytes_for(self._fd)

    def write(self, data: bytes) -> None:
        """Write all of `data` (whole lines): one write, unless the descriptor takes less."""
        if self._fd is None:
            raise OSError(errno.EBADF, "decision log sink is not open")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:  # an inherited non-blocking descriptor
                select.select([], [self._fd], [], 1.0)
                continue
            view = view[written:]

    def close(self) -> None:
        if self._fd is not None and self._owned:
            os.close(self._fd)
        self._fd = None


def open_sink(target: str) -> Sink | None:
    """The sink for `--decision-log`: `off`, `-` (stdout) or a file path (also a FIFO).

    For `-`, descriptor 1 becomes the log's own: Python's `sys.stdout` is pointed at stderr,
    so no stray print can land between decision log lines. Raises OSError when a file
    cannot be opened.
    """
    if target == "off":
        return None
    if target == "-":
        fd = sys.stdout.fileno()
        sys.stdout.flush()
        sys.stdout = sys.stderr
        _set_append(fd)
        return Sink("stdout", fd=fd, owned=False)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(target, flags, 0o640)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads yet: the writer thread waits
            return Sink(target, path=target)
        raise
    os.set_blocking(fd, True)
    return Sink(target, fd=fd)


def batch_bytes_for(fd: int) -> int:
    """FILE_BATCH_BYTES for a regular file in append mode, else PIPE_BATCH_BYTES."""
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        appending = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)
    except OSError:
        return PIPE_BATCH_BYTES
    return FILE_BATCH_BYTES if regular and appending else PIPE_BATCH_BYTES


def _set_append(fd: int) -> None:
    """Make writes to a regular file append, so several processes never overwrite lines."""
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except OSError:
        pass
