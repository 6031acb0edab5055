"""Limits of Envoy's Check: the path with its query, and the headers (count and bytes)."""

from __future__ import annotations

from typing import Any

from pdp.errors import HttpLimitExceeded
from pdp.server.limits import FLAG_NAMES, Limits


def check_http(message: Any, limits: Limits) -> None:
    """Raise HttpLimitExceeded when a CheckRequest's path or headers are over a limit."""
    http = message.attributes.request.http
    field = "attributes.request.http"
    path = http.path
    if (len(path) + len(http.query)) * 4 > limits.max_path_bytes:  # else it cannot be over
        size = len(path.encode("utf-8", "surrogatepass")) + len(http.query.encode("utf-8"))
        if size > limits.max_path_bytes:
            raise HttpLimitExceeded(
                f"{field}.path",
                f"{size} bytes is over the limit of {limits.max_path_bytes} "
                f"({FLAG_NAMES['max_path_bytes']})",
                414,
            )
    mapped = http.HasField("header_map") and len(http.header_map.headers) > 0
    count = len(http.header_map.headers) if mapped else len(http.headers)
    name = f"{field}.header_map" if mapped else f"{field}.headers"
    if count > limits.max_headers:
        raise HttpLimitExceeded(
            name,
            f"{count} headers is over the limit of {limits.max_headers} "
            f"({FLAG_NAMES['max_headers']})",
            431,
        )
    if http.ByteSize() <= limits.max_header_bytes:
        return  # the headers are a part of it: no need to add them up
    if mapped:
        size = sum(len(h.key) + len(h.value) + len(h.raw_value) for h in http.header_map.headers)
    else:
        size = sum(len(k) + len(v) for k, v in http.headers.items())
    if size > limits.max_header_bytes:
        raise HttpLimitExceeded(
            name,
            f"{size} bytes of headers is over the limit of {limits.max_header_bytes} "
            f"({FLAG_NAMES['max_header_bytes']})",
            431,
        )
