"""Request limits of the gRPC listener, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one call may ask; over a bound is a clear error, never a crash."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_batch_items: int = 1000
