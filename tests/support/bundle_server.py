"""A real nginx serving a folder of bundle archives on loopback (http, and https with a test CA).

nginx's own static file handler answers: real `ETag`s (mtime and size), real 304s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.certs import certificate_authority, leaf
from tests.support.nginx import NginxUnavailable, free_port, nginx

CONFIG = """
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;
  uwsgi_temp_path tmp; scgi_temp_path tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location = /moved.tar.gz {{ return 302 http://127.0.0.1:{port}/bundle.tar.gz; }}
  }}
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    root {root};
    location = /to-http.tar.gz {{ return 302 http://127.0.0.1:{port}/bundle.tar.gz; }}
  }}
}}
"""


@dataclass
class BundleServer:
    root: Path
    port: int
    tls_port: int
    ca_file: Path
    access_log: Path
    _published: int = 0

    def url(self, name: str = "bundle.tar.gz") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def https_url(self, name: str = "bundle.tar.gz") -> str:
        return f"https://127.0.0.1:{self.tls_port}/{name}"

    def publish(self, data: bytes, name: str = "bundle.tar.gz") -> None:
        """Replace the served archive with one rename (as a real publisher should).

        nginx's ETag is the file's mtime (seconds) and size: each publication gets its own
        mtime, as publications a second or more apart would."""
        temp = self.root / f".{name}.tmp"
        temp.write_bytes(data)
        self._published += 1
        stamp = 1_700_000_000 + self._published
        os.utime(temp, (stamp, stamp))
        os.replace(temp, self.root / name)

    def requests(self) -> list[str]:
        """Access log lines so far: `GET /bundle.tar.gz 200` style, one per request."""
        if not self.access_log.exists():
            return []
        return self.access_log.read_text().splitlines()

    def requests_after(self, count: int, timeout: float = 5.0) -> list[str]:
        """Access log lines after the first `count`, once there is one: nginx logs a request
        after its answer is sent, so a client can hold the answer before the line exists."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.requests()[count:]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


@contextmanager
def bundle_server(folder: Path) -> Iterator[BundleServer]:
    root = folder / "www"
    root.mkdir(parents=True)
    ca = certificate_authority("bundle test CA")
    server_cert = leaf(ca, "127.0.0.1", server=True)
    cert, key = server_cert.write(folder, "server")
    ca_file = folder / "ca.crt"
    ca_file.write_bytes(ca.cert)
    port, tls_port = free_port(), free_port()
    config = CONFIG.format(
        folder=folder, port=port, tls_port=tls_port, root=root, cert=cert, key=key
    )
    try:
        with nginx(config, folder / "nginx", port):
            yield BundleServer(root, port, tls_port, ca_file, folder / "access.log")
    except NginxUnavailable as exc:
        pytest.fail(f"a real nginx is needed for these tests: {exc}")
