"""One exception root with a machine-readable code, and its few subclasses."""

from __future__ import annotations

from dataclasses import dataclass


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


class PdpError(Exception):
    """Root of every error pdp raises on purpose; `code` is stable and machine-readable."""

    code = "internal"


class BundleError(PdpError):
    """A bundle that cannot be activated; carries every problem found."""

    code = "bundle_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems) or "bundle is invalid")


class RequestError(PdpError):
    """A malformed authorization request; `field` names the offending field."""

    code = "invalid_argument"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class LimitExceeded(RequestError):
    """A request over a configured limit (size, count, depth)."""

    code = "resource_exhausted"


class AuthnError(PdpError):
    """A presented credential that failed verification; `reason` is a short snake_case token.

    `reason` is a metric label and log field (`expired`, `bad_signature`, ...); `str()` is a
    sentence for operators. Neither ever contains the credential itself.
    """

    code = "unauthenticated"

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class NoBundleError(PdpError):
    """No valid bundle is active, so no decision can be made."""

    code = "unavailable"
