"""Ids that tie a Check to the proxy's logs and traces: the request id and a W3C trace id."""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_REQUEST_ID_LENGTH = 128
_REQUEST_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")  # visible ASCII
# W3C Trace Context `traceparent`: version-traceid-parentid-flags, lowercase hex only.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
MAX_TRACEPARENT_LENGTH = 512


def request_id(envoy_id: str, headers: Mapping[str, tuple[str, ...]]) -> str | None:
    """Envoy's request id (`attributes.request.http.id`), else the `x-request-id` header;
    None when neither is there, or the value is not 1 to 128 visible ASCII characters."""
    if envoy_id:
        return envoy_id if _REQUEST_ID.fullmatch(envoy_id) else None
    values = headers.get("x-request-id", ())
    if len(values) != 1:
        return None
    return values[0] if _REQUEST_ID.fullmatch(values[0]) else None


def trace_id(headers: Mapping[str, tuple[str, ...]]) -> str | None:
    """The trace id of a valid `traceparent` header, else None (never the header itself).

    Valid, as the W3C Trace Context spec reads it: exactly one header, lowercase hex fields
    of 2-32-16-2 digits, version not `ff`, trace id and parent id not all zeros; version `00`
    has nothing after the flags, a later version may carry more fields after a dash.
    """
    values = headers.get("traceparent", ())
    if len(values) != 1 or len(values[0]) > MAX_TRACEPARENT_LENGTH:
        return None
    match = _TRACEPARENT.fullmatch(values[0].strip(" \t"))
    if match is None:
        return None
    version, trace, parent, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace == "0" * 32 or parent == "0" * 16:
        return None
    return trace
