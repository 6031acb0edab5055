"""Envoy ext_authz v3 messages <-> the gateway's plain types (xds-protos, never vendored)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from google.protobuf import json_format
from google.rpc import code_pb2

from pdp.gateway.result import GatewayRequest, GatewayResponse

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def gateway_request(message: pb.CheckRequest, trusted: bool) -> GatewayRequest:
    """The plain request Envoy describes. `source.principal` and `metadata_context` are kept
    only when `trusted` (the caller reached pdp over mTLS or a Unix socket, or is vouched for)."""
    attributes = message.attributes
    http = attributes.request.http
    path = http.path
    if http.query and "?" not in path:  # Envoy sends the query inside `path`; be lenient
        path = f"{path}?{http.query}"
    source = attributes.source
    extensions = attributes.context_extensions
    address = ""
    if source.address.HasField("socket_address"):
        address = source.address.socket_address.address
    metadata = None
    if trusted and attributes.HasField("metadata_context"):
        metadata = {
            name: json_format.MessageToDict(struct)
            for name, struct in attributes.metadata_context.filter_metadata.items()
        }
    return GatewayRequest(
        method=http.method,
        path=path,
        headers=_headers(http),
        host=http.host,
        scheme=http.scheme,
        source_address=address,
        peer=(source.principal or None) if trusted else None,
        metadata=metadata,
        context_extensions=dict(extensions) if extensions else {},
        request_id=http.id,
    )


def _headers(http: Any) -> Mapping[str, tuple[str, ...]]:
    """Headers by lowercase name, from `header_map` when Envoy sent it, else from `headers`.

    Every entry is kept: how many there may be is `--max-headers`' business (checked before
    this), never a silent cut here, or a credential past the cut would go unseen."""
    found: dict[str, list[str]] = {}
    if http.HasField("header_map") and http.header_map.headers:
        for entry in http.header_map.headers:
            value = entry.value or entry.raw_value.decode("utf-8", "replace")
            found.setdefault(entry.key.lower(), []).append(value)
    else:
        headers = http.headers
        names = "".join(headers)
        if names == names.lower():
            return _LowercaseHeaders(headers)  # as Envoy sends them: no copy, read on demand
        for key, value in headers.items():
            found.setdefault(key.lower(), []).append(value)
    return {key: tuple(values) for key, values in found.items()}


class _LowercaseHeaders(Mapping[str, tuple[str, ...]]):
    """A `headers` map whose names are all lowercase, read lazily (one value per name)."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers

    def __getitem__(self, name: str) -> tuple[str, ...]:
        value = self._headers.get(name)  # (a protobuf map would answer "" for a missing name)
        if value is None:
            raise KeyError(name)
        return (value,)

    def get(self, name: str, default: Any = None) -> Any:
        value = self._headers.get(name)
        return default if value is None else (value,)

    def __contains__(self, name: object) -> bool:
        return name in self._headers

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


def check_response(response: GatewayResponse) -> pb.CheckResponse:
    """The CheckResponse for a gateway answer; `status` is always set."""
    message = pb.CheckResponse()
    _set_struct(message.dynamic_metadata, response.metadata)
    if response.allowed:
        message.status.code = code_pb2.OK
        ok = message.ok_response
        _add_headers(ok.headers, response.headers)
        ok.headers_to_remove.extend(response.remove_headers)
        return message
    status = response.http_status
    message.status.code = code_pb2.UNAUTHENTICATED if status == 401 else code_pb2.PERMISSION_DENIED
    denied = message.denied_response
    denied.status.code = status
    _add_headers(denied.headers, response.headers)
    denied.body = response.body
    return message


def _set_struct(struct: Any, values: Mapping[str, Any]) -> None:
    """`struct.update(values)`, writing strings and lists of strings directly (twice as fast)."""
    fields = struct.fields
    for key, value in values.items():
        if isinstance(value, str):
            fields[key].string_value = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = fields[key].list_value
            items.SetInParent()
            for item in value:
                items.values.add().string_value = item
        else:
            struct.update({key: value})


def _add_headers(options: Any, headers: tuple[tuple[str, str], ...]) -> None:
    # Overwrite, so a client-sent header of the same name never reaches upstream next to ours.
    for key, value in headers:
        option = options.add()
        option.header.key = key
        option.header.value = value
        option.append_action = _OVERWRITE


def fallback_deny(decision_id: str) -> pb.CheckResponse:
    """A bare 403 deny, for when building the real answer failed."""
    message = pb.CheckResponse()
    message.status.code = code_pb2.PERMISSION_DENIED
    message.denied_response.status.code = 403
    message.denied_response.body = json.dumps({"error": "forbidden", "decision_id": decision_id})
    return message
