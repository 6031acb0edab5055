"""A small HTTP/1.1 server on the running asyncio loop: httptools (llhttp) parses, limits bound.

Chosen by measurement over aiohttp's low-level server, uvicorn and granian
(bench/README.md, "The HTTP edge's server"). Every connection is bounded: request target,
header count and bytes, body size, a whole request's arrival time (slow senders,
slowloris), idle keep-alive time, pipelined requests waiting (answered in order), unread
responses (the peer must read), and the number of open connections. Anything malformed is a
4xx and the connection closes; the handler's own failure is a 500 that says nothing about
the request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from pdp.http.messages import Handler, Request, Response, WireLimits

log = logging.getLogger("pdp.http")

MAX_PIPELINE = 16  # requests read ahead of their answers before reading pauses
WRITE_HIGH_WATER = 256 * 1024
LINGER_SECONDS = 2.0  # reading (and dropping) after a refusal, so the answer is not reset


class _Refused(Exception):
    """A request refused while it is being read: answer `status` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    """Serves `handler` on listeners created by `start_tcp` / `start_unix`."""

    def __init__(self, handler: Handler, limits: WireLimits, error_body: Callable[..., bytes]):
        self.handler = handler
        self.limits = limits
        self.error_body = error_body  # (status, message) -> JSON bytes
        self.connections: set[_Connection] = set()
        self.servers: list[asyncio.base_events.Server] = []
        self._date = ("", 0)

    async def start_tcp(
        self, host: str, port: int, ssl: Any = None, reuse_port: bool = False
    ) -> asyncio.base_events.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self, tls=ssl is not None),
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
            lambda: _Connection(self, tls=ssl is not None), path, ssl=ssl, backlog=1024
        )
        self.servers.append(server)
        return server

    async def stop(self, grace: float) -> None:
        """Stop accepting, let requests in progress finish within `grace`, close the rest."""
        for server in self.servers:
            server.close()
        for connection in list(self.connections):
            connection.closing = True  # answer what is read, keep nothing alive
            if connection.idle:
                connection.close()
        end = time.monotonic() + grace
        while self.connections and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()
        for server in self.servers:
            await server.wait_closed()

    def date(self) -> str:
        now = int(time.time())
        if self._date[1] != now:
            self._date = (formatdate(now, usegmt=True), now)
        return self._date[0]

    def encode(self, response: Response, keep_alive: bool, request_id: str | None) -> bytes:
        reason = _REASONS.get(response.status, "")
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"date: {self.date()}",
            f"content-length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if request_id is not None:
            lines.append(f"x-request-id: {request_id}")
        if not keep_alive:
            lines.append("connection: close")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + response.body


_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _Connection(asyncio.Protocol):
    """One client connection: parse, queue, answer in order, time out."""

    def __init__(self, server: HttpServer, tls: bool) -> None:
        self.server = server
        self.limits = server.limits
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer: str | None = None
        # Requests read and not yet answered (with keep-alive), or a refusal to send in turn.
        self.queue: collections.deque[tuple[Request | Response, bool]] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False
        self.refused = False
        self.paused = False
        self.writable = asyncio.Event()
        self.writable.set()
        self._reset()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else None
        if len(self.server.connections) >= self.limits.max_connections:
            self._send_raw(503, "too many connections (--http-max-connections)")
            self.linger()
            return
        self.server.connections.add(self)
        self._arm(self.limits.request_timeout, 408, "no complete request in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._disarm()
        self.queue.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # the parser stopped at the error; nothing after it is read
        if not self.partial:
            self._arm(self.limits.request_timeout, 408, "the request did not arrive in time")
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request is answered as plain HTTP/1.1 (a server may ignore Upgrade); what
            # follows it would be another protocol, so nothing more is read.
            self.refused = True
            self.closing = True
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, refused.message)
            else:
                self._refuse(400, "malformed request")
        except httptools.HttpParserInvalidMethodError:
            self._refuse(400, "malformed request: unknown method")
        except httptools.HttpParserInvalidURLError:
            self._refuse(400, "malformed request: invalid request target")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed request: {_parser_reason(exc)}")

    def eof_received(self) -> bool | None:
        if self.refused:
            return None  # the peer is done sending: close now
        self.closing = True
        if self.task is None and not self.queue:
            return None  # close now
        return True  # answer what is queued, then close

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.partial = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_target_bytes:
            raise _Refused(414, f"the request target is over {self.limits.max_target_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.header_bytes += len(name) + len(value)
        if self.header_count > self.limits.max_headers:
            raise _Refused(431, f"more than {self.limits.max_headers} headers (--max-headers)")
        if self.header_bytes > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            raise _Refused(431, f"headers over {limit} bytes (--max-header-bytes)")
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        declared = None
        expect = None
        for name, value in self.headers:
            if name == "content-length":
                declared = value
            elif name == "expect":
                expect = value.lower()
        limit = self.limits.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(413, self._body_limit())
        if expect is not None:
            if expect != "100-continue":
                raise _Refused(417, f"unsupported Expect: {expect[:40]}")
            if not self.queue and self.task is None and self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > self.limits.max_body_bytes:
            raise _Refused(413, self._body_limit())

    def on_message_complete(self) -> None:
        target = self.url.decode("latin-1")
        path, _, query = target.partition("?")
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            target=target,
            path=path,
            query=query,
            headers=self.headers,
            body=bytes(self.body),
            peer=self.peer,
            tls=self.tls,
        )
        keep_alive = self.parser.should_keep_alive()
        self.partial = False
        self._disarm()
        self.queue.append((request, keep_alive))
        if len(self.queue) >= MAX_PIPELINE and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._answer())

    # --- answering ------------------------------------------------------------------------

    async def _answer(self) -> None:
        try:
            while self.queue:
                item, keep_alive = self.queue.popleft()
                if self.paused and len(self.queue) < MAX_PIPELINE // 2:
                    assert self.transport is not None
                    self.transport.resume_reading()
                    self.paused = False
                if isinstance(item, Response):
                    response, request_id = item, None
                else:
                    response = await self._respond(item)
                    request_id = _request_id(item)
                last = not self.queue  # closing: answer what was read, close after the last
                keep_alive = keep_alive and not response.close and not (self.closing and last)
                if not self.writable.is_set():
                    try:
                        await asyncio.wait_for(self.writable.wait(), self.limits.idle_timeout)
                    except TimeoutError:
                        self.abort()
                        return
                if self.transport is None or self.transport.is_closing():
                    return
                self.transport.write(self.server.encode(response, keep_alive, request_id))
                if not keep_alive:
                    self.queue.clear()
                    self.linger() if self.refused else self.close()
                    return
        finally:
            self.task = None
        if self.closing:
            self.close()
        elif not self.partial:
            self._arm(self.limits.idle_timeout, None, "idle")

    async def _respond(self, request: Request) -> Response:
        try:
            return await self.server.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the handler's own failure: never an allow, no details
            log.error(
                "HTTP handler failed; answered 500",
                extra={"event": "http_internal_error", "error": type(exc).__name__},
            )
            body = self.server.error_body(500, "internal error; see the server log")
            return Response(500, body, [("content-type", "application/json")], close=True)

    # --- helpers --------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.task is None and not self.queue and not self.partial

    def _reset(self) -> None:
        self.url = bytearray()
        self.headers: list[tuple[str, str]] = []
        self.header_count = 0
        self.header_bytes = 0
        self.body = bytearray()
        self.partial = False

    def _body_limit(self) -> str:
        return f"the body is over {self.limits.max_body_bytes} bytes (--max-message-bytes)"

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that could not be read, after those queued before it; close."""
        self.partial = False
        self.closing = True
        self.refused = True
        self._disarm()
        if self.task is None and not self.queue:
            self._send_raw(status, message)
            self.linger()
            return
        # Answered in order: the refusal waits behind the requests already read.
        refusal = Response(status, self.server.error_body(status, message), _JSON, close=True)
        self.queue.append((refusal, False))

    def _send_raw(self, status: int, message: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        response = Response(status, self.server.error_body(status, message), _JSON)
        self.transport.write(self.server.encode(response, False, None))

    def _arm(self, seconds: float, status: int | None, message: str) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(seconds, self._expired, status, message)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self, status: int | None, message: str) -> None:
        self.timer = None
        if self.task is not None:  # answering: the handler's own deadline rules; look again
            self.timer = asyncio.get_running_loop().call_later(1.0, self._expired, status, message)
            return
        if status is not None and self.partial:
            self._send_raw(status, message)
            self.linger()
            return
        self.close()

    def linger(self) -> None:
        """Close after a refusal without losing the answer: stop writing (FIN), read and drop
        what the peer still sends (a body it is still uploading), close within LINGER_SECONDS.
        Closing at once with unread data would reset the connection, answer and all."""
        self.refused = True
        if self.transport is None or self.transport.is_closing():
            return
        if not self.transport.can_write_eof():
            self.close()
            return
        self.transport.write_eof()
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self.close)

    def close(self) -> None:
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.abort()


_JSON = [("content-type", "application/json")]


def _request_id(request: Request) -> str | None:
    """A client's X-Request-ID, echoed (AuthZEN requires it) when it is one printable value."""
    value = request.header("x-request-id")
    if value and len(value) <= 256 and value.isprintable() and value.isascii():
        return value
    return None


def _parser_reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]
