"""Typed failures of a call, alike from the client and embedded mode; `PdpError` is the root.

A call that could not be decided raises one of these, never returns a deny, so a caller can
tell "no" from "could not ask".
"""

from __future__ import annotations

import re

from pdp.errors import ErrorCode, PdpError

_FIELD = re.compile(r"^(?P<field>[A-Za-z_][A-Za-z0-9_.\[\]]*): (?P<message>.+)$", re.S)
# Context and entities travel as `context_json` / `entities_json` text; callers passed them
# as `context=` / `entities=`, so that is what an error names.
_SENT_AS = re.compile(r"(^|\.)(context|entities)_json(?=$|[.\[])")


class CallError(PdpError):
    """A call that ended without a decision; `status` is the gRPC status name (or the same
    name in embedded mode), `message` what went wrong."""

    code = ErrorCode.INTERNAL
    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class BadRequest(CallError):
    """The request is malformed (INVALID_ARGUMENT); `field` names the offending field."""

    code = ErrorCode.INVALID_ARGUMENT
    status = "INVALID_ARGUMENT"

    def __init__(self, message: str, field: str = "") -> None:
        if not field:
            match = _FIELD.match(message)
            if match is not None:
                field, message = match.group("field"), match.group("message")
        field = _SENT_AS.sub(r"\1\2", field)
        self.field = field
        super().__init__(message)
        self.args = (f"{field}: {message}" if field else message,)


class ResourceExhausted(BadRequest):
    """The request is over a limit of the server (RESOURCE_EXHAUSTED): size, count, depth."""

    code = ErrorCode.RESOURCE_EXHAUSTED
    status = "RESOURCE_EXHAUSTED"


class Unavailable(CallError):
    """pdp cannot decide now (UNAVAILABLE): unreachable, or no valid bundle is active."""

    code = ErrorCode.UNAVAILABLE
    status = "UNAVAILABLE"


class DeadlineExceeded(CallError):
    """The call's deadline passed before a decision (DEADLINE_EXCEEDED)."""

    code = ErrorCode.DEADLINE_EXCEEDED
    status = "DEADLINE_EXCEEDED"


class ServerError(CallError):
    """Any other failure (INTERNAL, or a status pdp does not answer with); see `status`."""

    def __init__(self, message: str, status: str = "INTERNAL") -> None:
        super().__init__(message)
        self.status = status


__all__ = [
    "BadRequest",
    "CallError",
    "DeadlineExceeded",
    "PdpError",
    "ResourceExhausted",
    "ServerError",
    "Unavailable",
]
