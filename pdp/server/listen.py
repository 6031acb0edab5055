"""Listen addresses: their format checked up front, and why one cannot be bound, in words."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass

UNIX_PREFIX = "unix:"
# sun_path holds 108 bytes with its closing NUL; a longer path cannot be bound at all.
MAX_UNIX_PATH_BYTES = 107
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_FORMS = "HOST:PORT, [IPv6]:PORT or unix:/path"
_CAUSES = {
    errno.EADDRINUSE: "address in use (another process is listening on it)",
    errno.EADDRNOTAVAIL: "address not available (no network interface of this host has it)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EAFNOSUPPORT: "address family not supported on this host",
}

BIND_ERRORS = frozenset(_CAUSES)


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed listen address: TCP `host` and `port`, or a Unix socket `path`."""

    text: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def unix(self) -> bool:
        return bool(self.path)


def parse(text: str, unix: bool = True) -> Address:
    """`text` as HOST:PORT, [IPv6]:PORT or (when `unix`) unix:/path; ValueError naming why."""
    forms = _FORMS if unix else "HOST:PORT or [IPv6]:PORT"
    if text.startswith(UNIX_PREFIX):
        if not unix:
            raise ValueError(f"expected {forms}, not a unix socket: {text!r}")
        return _unix(text)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected {forms}, got {text!r}")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"the port must be a number from 0 to 65535, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address, in {text!r}") from None
        return Address(text, host[1:-1], int(port_text))
    if ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets, as in [::1]:9191, got {text!r}")
    if not _HOSTNAME.match(host):
        raise ValueError(f"{host!r} is not a host name or IPv4 address, in {text!r}")
    return Address(text, host, int(port_text))


def _unix(text: str) -> Address:
    path = text[len(UNIX_PREFIX) :]
    if path.startswith("//"):  # the URI form, unix:///run/pdp.sock
        path = path[2:]
    if not path or "\0" in path:
        raise ValueError(f"expected unix:/path/to/socket, got {text!r}")
    if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
        raise ValueError(
            f"a unix socket path is at most {MAX_UNIX_PATH_BYTES} bytes, got "
            f"{len(os.fsencode(path))} in {text!r}"
        )
    return Address(text, path=path)


def bind_problem(address: Address, reuse_port: bool = False) -> str | None:
    """Why `address` cannot be bound now (a plain socket bind tells), or None when it can.

    Like grpc, a TCP address that resolves to several (localhost: 127.0.0.1 and ::1) is
    fine when one of them binds.
    """
    if address.unix:
        return _unix_problem(address.path)
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"host {address.host!r} does not resolve ({exc.strerror})"
    causes = []
    for family, kind, proto, _, where in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                probe.bind(where)
        except OSError as exc:
            causes.append(describe(exc))
            continue
        return None
    return causes[0] if causes else f"host {address.host!r} has no address"


def _unix_problem(path: str) -> str | None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"directory {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"permission denied: cannot create a socket in {folder}"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return describe(exc)
    if not stat.S_ISSOCK(mode):
        return f"{path} exists and is not a socket"
    return None


def describe(exc: OSError) -> str:
    """An OSError from bind() in words: in use, not available, ... (errno, not its text)."""
    if exc.errno in _CAUSES:
        return _CAUSES[exc.errno]
    return exc.strerror or str(exc)
