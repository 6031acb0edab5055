"""Request limits of the listener: what one call may ask, and the error for a call over them.

The checks read raw fields (lengths, counts) before conversion or evaluation and raise
`LimitExceeded` (`RESOURCE_EXHAUSTED`) naming the field, the limit and its flag:
`limits.request` for pdp.v1 calls, `limits.walk` for the values inside them (Structs and
Cedar JSON text), `limits.http` for Envoy's Check; `limits.deadline` bounds evaluation time.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdp.errors import LimitExceeded


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one call may ask; over a bound is a clear error, never a crash."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_batch_items: int = 1000
    max_entities: int = 1000  # request entities per call (a batch: shared, and each item's)
    max_depth: int = 32  # nesting of objects and lists in context, attrs and tags
    max_id_length: int = 1024  # characters of an entity type or id
    max_string_length: int = 65536  # characters of any other string (values, keys)
    max_context_keys: int = 1000  # record keys in a context, at every level
    max_ancestors: int = 10_000  # (entity, ancestor) pairs of the request entities' hierarchy
    eval_timeout_seconds: float = 5.0  # per call; 0: only the client's deadline
    max_headers: int = 200  # Check: HTTP headers
    max_header_bytes: int = 64 * 1024  # Check: names and values of all headers
    max_path_bytes: int = 8192  # Check: the request path with its query


# Limit field -> its `pdp serve` flag (pdp.cli.flags builds the flags from this table).
FLAG_NAMES = {
    "max_message_bytes": "--max-message-bytes",
    "max_batch_items": "--max-batch",
    "max_entities": "--max-entities",
    "max_depth": "--max-depth",
    "max_id_length": "--max-id-length",
    "max_string_length": "--max-string-length",
    "max_context_keys": "--max-context-keys",
    "max_ancestors": "--max-ancestors",
    "eval_timeout_seconds": "--eval-timeout",
    "max_headers": "--max-headers",
    "max_header_bytes": "--max-header-bytes",
    "max_path_bytes": "--max-path-bytes",
}


def over(field: str, what: str, limits: Limits, name: str) -> LimitExceeded:
    """`FIELD: WHAT is over the limit of N (--flag)`."""
    limit = getattr(limits, name)
    return LimitExceeded(field, f"{what} is over the limit of {limit} ({FLAG_NAMES[name]})")
