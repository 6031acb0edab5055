"""A small HTTP/1.1 server on the running asyncio loop: httptools (llhttp) parses, limits bound.

Chosen by measurement over aiohttp's low-level server, uvicorn and granian
(bench/README.md, "The HTTP edge's server"). Every connection is bounded: request target,
header count and bytes, body size, a whole request's arrival time (slow senders,
slowloris), idle keep-alive time, pipelined requests waiting (answered in order), unread
responses (the peer must read), and the number of open connections. Anything malformed is a
4xx and the connection closes; the handler's own failure is a 500 that says nothing about
the request. `reading` reads requests within the limits, `connection` answers them in order
and times out, `writing` encodes responses; this module listens and stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pdp.http.connection import Connection, Shared
from pdp.http.messages import Handler, WireLimits


class HttpServer:
    """Serves `handler` on listeners created by `start_tcp` / `start_unix`."""

    def __init__(
        self, handler: Handler, limits: WireLimits, error_body: Callable[[int, str], bytes]
    ) -> None:
        self.limits = limits
        self.shared = Shared(handler, limits, error_body)
        self.servers: list[asyncio.base_events.Server] = []

    async def start_tcp(
        self, host: str, port: int, ssl: Any = None, reuse_port: bool = False
    ) -> asyncio.base_events.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Connection(self.shared, tls=ssl is not None),
            host,
            port,
            ssl=ssl,
            reuse_port=reuse_port or None,
            reuse_address=True,
            backlog=1024,
            ssl_handshake_timeout=self.limits.request_timeout if ssl is not None else None,
        )
        self.servers.append(server)
        return server

    async def start_unix(self, path: str, ssl: Any = None) -> asyncio.base_events.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(
            lambda: Connection(self.shared, tls=ssl is not None), path, ssl=ssl, backlog=1024
        )
        self.servers.append(server)
        return server

    async def stop(self, grace: float) -> None:
        """Stop accepting, let requests in progress finish within `grace`, close the rest."""
        for server in self.servers:
            server.close()
        connections = self.shared.connections
        for connection in list(connections):
            connection.closing = True  # answer what is read, keep nothing alive
            if connection.idle:
                connection.close()
        end = time.monotonic() + grace
        while connections and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for connection in list(connections):
            connection.abort()
        for server in self.servers:
            await server.wait_closed()
