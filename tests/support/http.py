"""HTTP helpers for the HTTP edge tests: real sockets to a real `pdp serve --http-listen`."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

TIMEOUT = 10.0
EVALUATION = "/access/v1/evaluation"  # AuthZEN 1.0 endpoints
EVALUATIONS = "/access/v1/evaluations"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def call(
    address: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> Answer:
    """One request on a fresh connection; a dict/list body is sent as JSON."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=TIMEOUT)
    try:
        sent = dict(headers or {})
        data = body
        if body is not None and not isinstance(body, bytes | str):
            data = json.dumps(body)
        if data is not None and content_type is not None:
            sent.setdefault("content-type", content_type)
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        found = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, found, response.read())
    finally:
        connection.close()


def post(address: str, path: str, body: Any, **kwargs: Any) -> Answer:
    return call(address, "POST", path, body, **kwargs)


def raw(address: str, data: bytes, wait: float = TIMEOUT) -> bytes:
    """Send `data` on a fresh TCP connection; everything read until the server closes (or
    `wait` seconds pass)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=wait) as sock:
        sock.sendall(data)
        return read_all(sock, wait)


def read_all(sock: socket.socket, wait: float = TIMEOUT) -> bytes:
    chunks = []
    end = time.monotonic() + wait
    sock.settimeout(0.5)
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def statuses(data: bytes) -> list[int]:
    """The status codes of the HTTP/1.1 responses in `data`, in order (bodies skipped by
    their content-length; a 1xx has none)."""
    found = []
    while data.startswith(b"HTTP/1.1 "):
        head, sep, data = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        found.append(status)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        data = data[length:]
    return found


def log_lines(server: Any, decision_id: str, wait: float = 5.0) -> dict[str, Any]:
    """The decision log line (`pdp serve` writes them to stdout) of `decision_id`."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        for line in list(server.stdout_lines):
            if decision_id in line and line.startswith("{"):
                return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no decision log line for {decision_id}")
