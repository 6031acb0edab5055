"""A real nginx for tests: Debian's binary, a generated config, free loopback ports, a temp dir.

`make test` installs Debian's `nginx` package when it is missing (`make test-deps`) and stops
the service its install may start; the tests run the binary themselves, in the foreground,
and stop it by its pid. A missing nginx fails the tests that need it, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class NginxUnavailable(RuntimeError):
    """nginx is not installed or did not start; the message says why."""


def binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        raise NginxUnavailable(
            "nginx is not installed; `make test-deps` (run by `make test`) installs Debian's "
            "nginx package"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def nginx(config: str, folder: Path, port: int, timeout: float = 15.0) -> Iterator[int]:
    """Run nginx with `config` (prefix `folder`) until the block ends; yields its pid."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    (folder / "nginx.conf").write_text(config)
    directives = "daemon off; master_process on;"
    if os.geteuid() == 0:
        directives += " user root;"  # the temp folder is the test's own, closed to others
    process = subprocess.Popen(
        [binary(), "-p", str(folder), "-c", "nginx.conf", "-e", "stderr", "-g", directives],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + timeout
        while not _accepting(port):
            if process.poll() is not None or time.monotonic() > end:
                error = process.stderr.read() if process.poll() is not None else ""
                raise NginxUnavailable(f"nginx did not start (exit {process.returncode}): {error}")
            time.sleep(0.05)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class EchoUpstream:
    """A tiny upstream on 127.0.0.1: answers 200 with the method, path and headers it got."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                record = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
                owner.seen.append(record)
                body = json.dumps(record).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EchoUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
