"""One HTTP/1.1 client connection: requests queued and answered in order, timeouts, closing."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pdp.http.messages import Handler, Request, Response, WireLimits
from pdp.http.reading import RequestReader
from pdp.http.writing import JSON, HttpDate, encode, request_id

log = logging.getLogger("pdp.http")

MAX_PIPELINE = 16  # requests read ahead of their answers before reading pauses
WRITE_HIGH_WATER = 256 * 1024
LINGER_SECONDS = 2.0  # reading (and dropping) after a refusal, so the answer is not reset


@dataclass(slots=True)
class Shared:
    """What every connection of one server uses: the handler, limits, the open connections."""

    handler: Handler
    limits: WireLimits
    error_body: Callable[[int, str], bytes]  # (status, message) -> JSON bytes
    connections: set[Connection] = field(default_factory=set)
    date: HttpDate = field(default_factory=HttpDate)

    def encode(self, response: Response, keep_alive: bool, request_id: str | None) -> bytes:
        return encode(response, keep_alive, request_id, self.date.now())


class Connection(asyncio.Protocol):
    """One client connection: parse, queue, answer in order, time out."""

    def __init__(self, shared: Shared, tls: bool) -> None:
        self.shared = shared
        self.limits = shared.limits
        self.transport: asyncio.Transport | None = None
        self.reader = RequestReader(self.limits, tls, self._received, self._continue)
        # Requests read and not yet answered (with keep-alive), or a refusal to send in turn.
        self.queue: collections.deque[tuple[Request | Response, bool]] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False
        self.refused = False
        self.paused = False
        self.writable = asyncio.Event()
        self.writable.set()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.reader.peer = peer[0] if isinstance(peer, tuple) and peer else None
        if len(self.shared.connections) >= self.limits.max_connections:
            self._send_raw(503, "too many connections (--http-max-connections)")
            self.linger()
            return
        self.shared.connections.add(self)
        self._arm(self.limits.request_timeout, 408, "no complete request in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.connections.discard(self)
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
        if not self.reader.partial:
            self._arm(self.limits.request_timeout, 408, "the request did not arrive in time")
        refusal = self.reader.feed(data)
        if refusal is not None:
            self._refuse(refusal.status, refusal.message)
        elif self.reader.upgraded:  # answered as HTTP/1.1, then nothing more is read
            self.refused = True
            self.closing = True

    def eof_received(self) -> bool | None:
        if self.refused:
            return None  # the peer is done sending: close now
        self.closing = True
        if self.task is None and not self.queue:
            return None  # close now
        return True  # answer what is queued, then close

    # --- the reader's callbacks -------------------------------------------------------------

    def _continue(self) -> None:
        if not self.queue and self.task is None and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _received(self, request: Request, keep_alive: bool) -> None:
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
                    response, echoed = item, None
                else:
                    response = await self._respond(item)
                    echoed = request_id(item)
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
                self.transport.write(self.shared.encode(response, keep_alive, echoed))
                if not keep_alive:
                    self.queue.clear()
                    self.linger() if self.refused else self.close()
                    return
        finally:
            self.task = None
        if self.closing:
            self.close()
        elif not self.reader.partial:
            self._arm(self.limits.idle_timeout, None, "idle")

    async def _respond(self, request: Request) -> Response:
        try:
            return await self.shared.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the handler's own failure: never an allow, no details
            log.error(
                "HTTP handler failed; answered 500",
                extra={"event": "http_internal_error", "error": type(exc).__name__},
            )
            body = self.shared.error_body(500, "internal error; see the server log")
            return Response(500, body, JSON, close=True)

    # --- closing --------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.task is None and not self.queue and not self.reader.partial

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that could not be read, after those queued before it; close."""
        self.reader.partial = False
        self.closing = True
        self.refused = True
        self._disarm()
        if self.task is None and not self.queue:
            self._send_raw(status, message)
            self.linger()
            return
        # Answered in order: the refusal waits behind the requests already read.
        refusal = Response(status, self.shared.error_body(status, message), JSON, close=True)
        self.queue.append((refusal, False))

    def _send_raw(self, status: int, message: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        response = Response(status, self.shared.error_body(status, message), JSON)
        self.transport.write(self.shared.encode(response, False, None))

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
        if status is not None and self.reader.partial:
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
