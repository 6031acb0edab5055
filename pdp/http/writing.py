"""Writing one HTTP/1.1 response: status line, Date, length, headers, the echoed X-Request-ID."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from pdp.http.messages import Request, Response

JSON = [("content-type", "application/json")]

_REASONS = {status.value: status.phrase for status in HTTPStatus}


class HttpDate:
    """The `Date` header's value, formatted once a second."""

    def __init__(self) -> None:
        self._date = ("", 0)

    def now(self) -> str:
        second = int(time.time())
        if self._date[1] != second:
            self._date = (formatdate(second, usegmt=True), second)
        return self._date[0]


def encode(response: Response, keep_alive: bool, request_id: str | None, date: str) -> bytes:
    """The bytes of `response`: `connection: close` unless kept alive."""
    reason = _REASONS.get(response.status, "")
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"date: {date}",
        f"content-length: {len(response.body)}",
    ]
    lines += [f"{name}: {value}" for name, value in response.headers]
    if request_id is not None:
        lines.append(f"x-request-id: {request_id}")
    if not keep_alive:
        lines.append("connection: close")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + response.body


def request_id(request: Request) -> str | None:
    """A client's X-Request-ID, echoed (AuthZEN requires it) when it is one printable value."""
    value = request.header("x-request-id")
    if value and len(value) <= 256 and value.isprintable() and value.isascii():
        return value
    return None
