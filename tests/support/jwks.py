"""A key set endpoint that can answer, hang or be gone, and a bundle whose JWKS is its URL."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.gateway import bundle_with, ec_key
from tests.support.paths import EXAMPLE_BUNDLE

CACHE, MIN_REFRESH, FETCH_TIMEOUT = 1.0, 0.5, 5.0  # the test bundle's jwks settings
KEY = ec_key()
ORDERS = ("GET", "/api/users/42/orders")


class FlakyJwks:
    """A loopback HTTP endpoint for one key set that can answer, hang, or be gone."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.body = json.dumps(document).encode()
        self.mode = "ok"
        self.requests = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Condition()
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        listener.settimeout(0.05)
        return listener

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks"

    def _serve(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.requests += 1
            if self.mode == "hang":  # accept, read nothing, answer nothing (until released)
                with self._lock:
                    self._held.append(connection)
                    self._lock.notify_all()
                continue
            self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(2)
        try:
            connection.recv(65536)
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(self.body)}\r\n"
            connection.sendall(head.encode() + b"connection: close\r\n\r\n" + self.body)
        except OSError:
            pass
        finally:
            connection.close()

    def down(self) -> None:
        """Stop listening: connections are refused."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def hang(self) -> None:
        """Listen again, accept, and never answer."""
        self.mode = "hang"
        if self._listener is None:
            self._listener = self._listen(self.port)

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until `count` requests are being held (in `hang` mode)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._held) >= count, timeout):
                raise AssertionError(f"no key set request held within {timeout} s")

    def release(self) -> None:
        """Answer every held request with the key set, and answer new ones again."""
        self.mode = "ok"
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            self._answer(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.down()
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            connection.close()


def url_bundle(root: Path, url: str) -> Path:
    text = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
    keys = (
        f"url: {url}\n"
        f"          cache_seconds: {CACHE}\n"
        f"          min_refresh_seconds: {MIN_REFRESH}\n"
        f"          timeout_seconds: {FETCH_TIMEOUT}"
    )
    return bundle_with(root, text.replace("file: keys/orders.jwks.json", keys, 1))
