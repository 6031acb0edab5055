"""Reading HTTP/1.1 requests off a connection: httptools callbacks bounded by `WireLimits`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httptools

from pdp.http.messages import Request, WireLimits


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused while it is being read: answer `status` with `message` and close."""

    status: int
    message: str


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; `feed` returns its refusal."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.refusal = Refusal(status, message)


class RequestReader:
    """Feeds bytes to httptools and hands over each complete request with its keep-alive.

    Bounds the request target, header count and bytes, and the body (declared or sent);
    `feed` returns the `Refusal` to answer when a request breaks one of them or is malformed.
    `partial` is true between a request's first byte and its last."""

    def __init__(
        self,
        limits: WireLimits,
        tls: bool,
        on_request: Callable[[Request, bool], None],
        on_continue: Callable[[], None],
    ) -> None:
        self.limits = limits
        self.tls = tls
        self.peer: str | None = None
        self.on_request = on_request  # (request, keep_alive)
        self.on_continue = on_continue  # the request expects `100 Continue`
        self.parser = httptools.HttpRequestParser(self)
        self.upgraded = False
        self._reset()

    def feed(self, data: bytes) -> Refusal | None:
        """Parse `data`; the refusal to answer when it breaks a limit or is malformed.

        An Upgrade request sets `upgraded`: it is answered as plain HTTP/1.1 (a server may
        ignore Upgrade); what follows it would be another protocol, so nothing more is read."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgraded = True
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                return refused.refusal
            return Refusal(400, "malformed request")
        except httptools.HttpParserInvalidMethodError:
            return Refusal(400, "malformed request: unknown method")
        except httptools.HttpParserInvalidURLError:
            return Refusal(400, "malformed request: invalid request target")
        except httptools.HttpParserError as exc:
            return Refusal(400, f"malformed request: {_parser_reason(exc)}")
        return None

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
            self.on_continue()

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
        self.on_request(request, keep_alive)

    # --- helpers --------------------------------------------------------------------------

    def _reset(self) -> None:
        self.url = bytearray()
        self.headers: list[tuple[str, str]] = []
        self.header_count = 0
        self.header_bytes = 0
        self.body = bytearray()
        self.partial = False

    def _body_limit(self) -> str:
        return f"the body is over {self.limits.max_body_bytes} bytes (--max-message-bytes)"


def _parser_reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]
