"""grpc status -> the client's typed errors, and the per-call timeout rule."""

from __future__ import annotations

import grpc

from pdp.client.errors import (
    BadRequest,
    CallError,
    DeadlineExceeded,
    ResourceExhausted,
    ServerError,
    Unavailable,
)

_BY_CODE: dict[grpc.StatusCode, type[CallError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: BadRequest,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Unavailable,  # the channel closed under the call
}


def error_of(exc: grpc.RpcError) -> CallError:
    """The typed error for a failed call; the status message names the field for bad input."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    kind = _BY_CODE.get(code)
    if kind is None:
        return ServerError(details, code.name if code is not None else "UNKNOWN")
    return kind(details)


def timeout_of(timeout: float | None, default: float) -> float:
    """Every call has a deadline: the call's own, else the client's."""
    chosen = default if timeout is None else timeout
    if not chosen > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {chosen!r}")
    return float(chosen)
