"""What the HTTP edge's server hands its handler and takes back: requests, responses, limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WireLimits:
    """What one connection and one request may hold or take."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_headers: int = 200
    max_header_bytes: int = 64 * 1024
    max_target_bytes: int = 8192
    request_timeout: float = 10.0  # first byte of a request to its last (headers and body)
    idle_timeout: float = 60.0  # a kept-alive connection waiting for its next request
    max_connections: int = 1024


@dataclass(slots=True)
class Request:
    """One parsed request: names lowercase, values as sent (latin-1), body complete."""

    method: str
    target: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: str | None  # the client's IP address; None on a Unix socket
    tls: bool

    def header(self, name: str) -> str | None:
        """The value of header `name` (lowercase); None when absent, "" when repeated."""
        found = None
        for key, value in self.headers:
            if key == name:
                if found is not None:
                    return ""
                found = value
        return found

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


Handler = Callable[[Request], Awaitable[Response]]
