"""A real nginx for tests: Debian's binary, a generated config, free loopback ports, a temp dir.

`make test` installs Debian's `nginx` package when it is missing (`make test-deps`) and stops
the service its install may start; the tests run the binary themselves, in the foreground,
and stop it by its pid. A missing nginx fails the tests that need it, saying so.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonUnavailable, accepting, find_binary, free_port, running

__all__ = ["EchoUpstream", "NginxUnavailable", "binary", "free_port", "nginx"]


class NginxUnavailable(DaemonUnavailable):
    """nginx is not installed or did not start; the message says why."""


def binary() -> str:
    return find_binary("nginx", "/usr/sbin/nginx", "nginx", NginxUnavailable)


@contextmanager
def nginx(config: str, folder: Path, port: int, timeout: float = 15.0) -> Iterator[int]:
    """Run nginx with `config` (prefix `folder`) until the block ends; yields its pid.

    Ready once `port` accepts; its stderr (where `-e stderr` sends the early errors) is
    `folder/stderr.log`. Stopped with SIGQUIT: requests in progress finish first."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    (folder / "nginx.conf").write_text(config)
    directives = "daemon off; master_process on;"
    if os.geteuid() == 0:
        directives += " user root;"  # the temp folder is the test's own, closed to others
    command = [binary(), "-p", str(folder), "-c", "nginx.conf", "-e", "stderr", "-g", directives]
    with running(
        command,
        log=folder / "stderr.log",
        ready=lambda: accepting(port),
        unavailable=NginxUnavailable,
        timeout=timeout,
        stop=signal.SIGQUIT,
    ) as process:
        yield process.pid


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
