"""Every exception pdp raises, under one root whose `code` maps to a gRPC and an HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a bundle, located as precisely as we can."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (the values are what logs and tests see)."""

    INTERNAL = "internal"
    INVALID_ARGUMENT = "invalid_argument"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAVAILABLE = "unavailable"
    UNAUTHENTICATED = "unauthenticated"
    UNIMPLEMENTED = "unimplemented"
    BUNDLE_INVALID = "bundle_invalid"
    SUITE_INVALID = "suite_invalid"
    TLS_INVALID = "tls_invalid"
    LISTEN_FAILED = "listen_failed"
    DEVKIT = "devkit"
    KEY_INVALID = "key_invalid"
    FETCH_FAILED = "fetch_failed"


# code -> (grpc.StatusCode name, HTTP status): the one place an edge turns an error into a
# status. Configuration codes never reach a caller (they stop a command or a reload).
STATUS: dict[ErrorCode, tuple[str, int]] = {
    ErrorCode.INTERNAL: ("INTERNAL", 500),
    ErrorCode.INVALID_ARGUMENT: ("INVALID_ARGUMENT", 400),
    ErrorCode.RESOURCE_EXHAUSTED: ("RESOURCE_EXHAUSTED", 413),
    ErrorCode.DEADLINE_EXCEEDED: ("DEADLINE_EXCEEDED", 503),
    ErrorCode.UNAVAILABLE: ("UNAVAILABLE", 503),
    ErrorCode.UNAUTHENTICATED: ("UNAUTHENTICATED", 401),
    ErrorCode.UNIMPLEMENTED: ("UNIMPLEMENTED", 501),
    ErrorCode.BUNDLE_INVALID: ("FAILED_PRECONDITION", 500),
    ErrorCode.SUITE_INVALID: ("FAILED_PRECONDITION", 500),
    ErrorCode.TLS_INVALID: ("FAILED_PRECONDITION", 500),
    ErrorCode.LISTEN_FAILED: ("UNAVAILABLE", 503),
    ErrorCode.DEVKIT: ("FAILED_PRECONDITION", 500),
    ErrorCode.KEY_INVALID: ("FAILED_PRECONDITION", 500),
    ErrorCode.FETCH_FAILED: ("UNAVAILABLE", 503),
}


class PdpError(Exception):
    """Root of every error pdp raises on purpose; `code` is stable and machine-readable."""

    code: ErrorCode = ErrorCode.INTERNAL

    @property
    def grpc_status(self) -> str:
        """The name of the `grpc.StatusCode` this error is answered with."""
        return STATUS[self.code][0]

    @property
    def http_status(self) -> int:
        """The HTTP status this error is answered with."""
        return STATUS[self.code][1]


# --- bundles and the files around them ----------------------------------------------------


class BundleError(PdpError):
    """A bundle that cannot be activated: every problem found, and the warnings met on the way
    (a warning can explain an error: `entity.json` next to an unknown-entity error)."""

    code = ErrorCode.BUNDLE_INVALID

    def __init__(self, problems: list[Problem], warnings: tuple[Problem, ...] = ()) -> None:
        self.problems = problems
        self.warnings = warnings
        super().__init__("\n".join(str(p) for p in problems) or "bundle is invalid")


class YamlError(BundleError):
    """A YAML file that does not parse; its one problem says where and why."""


class SuiteError(BundleError):
    """Test suites or fixtures that do not parse; reported like a bundle that does not load."""

    code = ErrorCode.SUITE_INVALID


class ArchiveError(BundleError):
    """A bundle archive that is refused: unsafe, over a limit, unsigned or tampered; the
    problem names the member (or the archive) at fault."""

    @classmethod
    def at(cls, file: str, message: str) -> ArchiveError:
        return cls([Problem(file, message)])


class FileReadError(PdpError):
    """A content file that could not be read; the message names no path (the caller does)."""

    code = ErrorCode.BUNDLE_INVALID


class NoBundleError(PdpError):
    """No valid bundle is active, so no decision can be made."""

    code = ErrorCode.UNAVAILABLE


# --- requests -----------------------------------------------------------------------------


class RequestError(PdpError):
    """A malformed authorization request; `field` names the offending field."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class LimitExceeded(RequestError):
    """A request over a configured limit (size, count, depth)."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class HttpLimitExceeded(LimitExceeded):
    """A Check request over a limit; its deny has its own HTTP status (414, 431)."""

    def __init__(self, field: str, message: str, http_status: int) -> None:
        super().__init__(field, message)
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status


class DeadlineExceeded(PdpError):
    """The call's deadline, or the evaluation bound, passed before the work was done."""

    code = ErrorCode.DEADLINE_EXCEEDED


class PathError(PdpError, ValueError):
    """An HTTP path that cannot be normalized safely; it matches no route."""

    code = ErrorCode.INVALID_ARGUMENT


class AuthnError(PdpError):
    """A presented credential that failed verification; `reason` is a short snake_case token.

    `reason` is a metric label and log field (`expired`, `bad_signature`, ...); `str()` is a
    sentence for operators. Neither ever contains the credential itself.
    """

    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class PlanUnsupported(PdpError, ValueError):
    """A query plan the caller's target (SQL filter, predicate) cannot express; names the part."""

    code = ErrorCode.UNIMPLEMENTED


# --- the server and the command line ------------------------------------------------------


class TlsError(PdpError):
    """A certificate, key or client CA file that cannot be served; names the file."""

    code = ErrorCode.TLS_INVALID


class ListenError(PdpError, OSError):
    """The listen address cannot be bound; the message names the flag and the cause."""

    code = ErrorCode.LISTEN_FAILED


class BodyError(PdpError):
    """An HTTP request body that cannot be read as the call's JSON object: answered `status`
    (400, 413 or 415), naming `field` where one is at fault."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class ForwardAuthRefused(PdpError):
    """A /forward-auth request refused before any decision (an untrusted proxy, an unclear
    original request): answered `status` with the `reason` token."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class StateConfigError(PdpError):
    """A protection state option (`--state`, its TLS and password files) that cannot be used."""

    code = ErrorCode.INVALID_ARGUMENT


class KeyFileError(PdpError):
    """A signing or verification key file that cannot be used; names the file and why."""

    code = ErrorCode.KEY_INVALID


class FetchError(PdpError):
    """A remote bundle that could not be fetched (network, HTTP status, size, redirect)."""

    code = ErrorCode.FETCH_FAILED


class DevkitError(PdpError):
    """A development key, bundle or token that cannot be made; the message says why."""

    code = ErrorCode.DEVKIT


# --- signals inside query planning (caught there, never seen by a caller) -----------------


class NotLiteral(ValueError):
    """An expression that is not a plain value."""


class ExtensionValue(ValueError):
    """A value of a Cedar extension type (decimal, ip, datetime, duration): plans have none."""


class Inexpressible(Exception):
    """An expression a plan cannot express; `reason` says why (it becomes an unsupported part)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
