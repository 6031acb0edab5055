"""Fetches a bundle archive over HTTPS: conditional GET, bounded size and time, safe redirects.

Plain `http://` is only for loopback hosts unless the operator allows it. Redirects stay on
https (or, for an allowed http source, on an equally allowed URL); `file:` and every other
scheme are refused. URLs are logged without credentials, query or fragment.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from pdp.bundle.archive import MAX_ARCHIVE_BYTES
from pdp.errors import FetchError

TIMEOUT_SECONDS = 30.0
MAX_REDIRECTS = 5
_CHUNK = 256 * 1024
_LOOPBACK_NAMES = ("localhost", "localhost.")


def is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


def check_url(url: str, allow_insecure: bool = False) -> None:
    """Raise ValueError when `url` may not be a bundle source (the message says why)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{redact(url)}: a bundle URL is https://HOST/PATH")
    if parts.scheme == "http" and not allow_insecure and not is_loopback(parts.hostname):
        raise ValueError(
            f"{redact(url)}: plain http is only allowed for a loopback host; use https "
            "(or --allow-insecure-bundle-url, when the network is trusted)"
        )


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    """`url` without user info, query or fragment: what logs and GetStatus may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(unparsable URL)"
    query = "?..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + query


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch: `data` is None when the server answered 304 Not Modified."""

    data: bytes | None
    etag: str


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def __init__(self, source: str, allow_insecure: bool) -> None:
        self._source_scheme = urlsplit(source).scheme
        self._allow_insecure = allow_insecure

    def redirect_request(
        self, req: Any, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        target = urlsplit(newurl)
        if self._source_scheme == "https" and target.scheme != "https":
            raise FetchError(f"redirect to {redact(newurl)} refused: https may only go to https")
        try:
            check_url(newurl, self._allow_insecure)
        except ValueError as exc:
            raise FetchError(f"redirect refused: {exc}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Fetcher:
    """GETs one URL with `If-None-Match`; raises FetchError naming the (redacted) URL."""

    def __init__(
        self,
        url: str,
        allow_insecure: bool = False,
        timeout: float = TIMEOUT_SECONDS,
        max_bytes: int = MAX_ARCHIVE_BYTES,
        context: ssl.SSLContext | None = None,
    ) -> None:
        check_url(url, allow_insecure)
        self.url = url
        self.shown = redact(url)
        self.timeout = timeout
        self._max_bytes = max_bytes
        tls = context or ssl.create_default_context()  # verifies the chain and the host name
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPSHandler(context=tls),
            _Redirects(url, allow_insecure),
        ]
        if is_loopback(urlsplit(url).hostname or ""):  # HTTPS_PROXY is for remote hosts
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def fetch(self, etag: str = "") -> Fetched:
        request = urllib.request.Request(self.url, headers={"Accept": "application/gzip"})
        if etag:
            request.add_header("If-None-Match", etag)
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                scheme = urlsplit(response.geturl()).scheme
                if scheme not in ("https", "http"):  # belt and braces: the handler refuses
                    raise FetchError(f"{self.shown}: ended on a {scheme}: URL")
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self._max_bytes:
                    raise FetchError(
                        f"{self.shown}: archive is {length} bytes, over the limit of "
                        f"{self._max_bytes}"
                    )
                data = self._read(response, started)
                return Fetched(data, response.headers.get("ETag", ""))
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return Fetched(None, exc.headers.get("ETag", "") or etag)
            if 300 <= exc.code < 400:  # urllib's own refusal quotes the target URL: not logged
                raise FetchError(
                    f"{self.shown}: HTTP {exc.code}: redirect refused (only http(s) targets)"
                ) from None
            raise FetchError(f"{self.shown}: HTTP {exc.code} {_phrase(exc.code)}") from None
        except FetchError:
            raise
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, FetchError):
                raise reason from None
            raise FetchError(f"{self.shown}: {reason}") from None
        except (OSError, ValueError) as exc:  # timeouts, resets, TLS, bad chunking
            raise FetchError(f"{self.shown}: {type(exc).__name__}: {exc}") from None

    def _read(self, response: IO[bytes], started: float) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            if time.monotonic() - started > self.timeout:
                raise FetchError(f"{self.shown}: download took longer than {self.timeout} s")
            chunk = response.read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > self._max_bytes:
                raise FetchError(
                    f"{self.shown}: archive is over the limit of {self._max_bytes} bytes"
                )
            chunks.append(chunk)


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""
