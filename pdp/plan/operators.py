"""Cedar's operators and extension functions, as the residual translator sorts them."""

from __future__ import annotations

# extension functions that answer a Boolean
BOOLEAN_EXTENSIONS = frozenset(
    (
        "lessThan",
        "lessThanOrEqual",
        "greaterThan",
        "greaterThanOrEqual",
        "isIpv4",
        "isIpv6",
        "isLoopback",
        "isMulticast",
        "isInRange",
    )
)
# extension constructors and methods that answer an extension value or a number
VALUE_EXTENSIONS = frozenset(
    (
        "ip",
        "decimal",
        "datetime",
        "duration",
        "offset",
        "durationSince",
        "toDate",
        "toTime",
        "toDays",
        "toHours",
        "toMinutes",
        "toSeconds",
        "toMilliseconds",
    )
)
# operators that never answer a Boolean
NOT_BOOLEAN = frozenset(("+", "-", "*", "neg", "Set", "Record"))
# operators that answer a Boolean (or an error)
BOOLEAN_SHAPED = frozenset(
    (
        "&&",
        "||",
        "!",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "in",
        "has",
        "like",
        "is",
        "contains",
        "containsAll",
        "containsAny",
        "isEmpty",
    )
)
