"""HTTP path normalization before route matching: one canonical form, or a refusal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from pdp.errors import PathError

_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Non-empty segments of unreserved and sub-delim characters (no %, ;, \\, ?, #, controls):
# such a path is its own normal form unless a segment is "." or "..".
_PLAIN = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,=:@]+)+")
MAX_PATH_BYTES = 65536  # the hard cap; `--max-path-bytes` (default 8192) is at most this


@dataclass(frozen=True, slots=True)
class NormalizedPath:
    """A request target split into the canonical path, its segments and the query."""

    path: str
    segments: tuple[str, ...]
    query: tuple[tuple[str, str], ...]

    def query_value(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        return next((value for key, value in self.query if key == name), None)


def normalize(target: str) -> NormalizedPath:
    """Split off the query and fragment, then percent-decode, resolve dot segments, merge slashes.

    Refused (PathError): not starting with `/`, an encoded slash or backslash (`%2F`, `%5C`),
    a raw backslash, a `;` path parameter, control characters, invalid percent-encoding,
    non-UTF-8 bytes, and `..` climbing above the root. A trailing slash is dropped. Matching
    stays case-sensitive, so `/API/admin` is not `/api/admin`.
    """
    if len(target.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise PathError(f"path is longer than {MAX_PATH_BYTES} bytes")
    raw_path, _, query_text = target.partition("?")
    raw_path = raw_path.partition("#")[0]
    query_text = query_text.partition("#")[0]
    if _PLAIN.fullmatch(raw_path) and "/." not in raw_path:
        segments = raw_path[1:].split("/")  # the common case, already in normal form
    else:
        segments = decoded_segments(raw_path)
    return NormalizedPath("/" + "/".join(segments), tuple(segments), _query(query_text))


def decoded_segments(raw_path: str) -> list[str]:
    """The segments of a raw path (no query), decoded and resolved; PathError when refused."""
    if not raw_path.startswith("/"):
        raise PathError("path must start with '/'")
    if "\\" in raw_path:
        raise PathError("backslash in path")
    if ";" in raw_path:
        raise PathError("';' path parameters are refused (servers disagree on their meaning)")
    if _BAD_PERCENT.search(raw_path):
        raise PathError("invalid percent-encoding")
    for match in _PERCENT.finditer(raw_path):
        if match.group(1).upper() in ("2F", "5C"):
            raise PathError("encoded slash or backslash in path")
    decoded = _percent_decode(raw_path)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise PathError("control character in path")
    if ";" in decoded:
        raise PathError("';' path parameters are refused (servers disagree on their meaning)")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise PathError("'..' climbs above the root")
            segments.pop()
            continue
        segments.append(segment)
    return segments


def _query(text: str) -> tuple[tuple[str, str], ...]:
    """The query's name/value pairs in order, decoded; PathError when not UTF-8."""
    if not text:
        return ()
    try:
        return tuple(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise PathError("query string is not valid UTF-8") from None


def _percent_decode(text: str) -> str:
    """Decode %XX once, as UTF-8; raise PathError on bytes that are not UTF-8."""
    try:
        return unquote(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise PathError("percent-encoded bytes are not UTF-8") from None
