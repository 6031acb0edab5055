"""How the client reaches pdp: target, TLS/mTLS, message sizes, and the retry policy.

Retries are grpc's own (a service config `retryPolicy`, not a loop of ours): a call that
ends UNAVAILABLE is tried again, at most `MAX_ATTEMPTS` times in all, with a short
backoff, and never past the call's deadline. pdp answers UNAVAILABLE only when it decided
nothing (no valid bundle is active), and grpc reports it when the connection could not be
made, so the request never left. The one case where a retried request may already have
been decided is a connection lost while the server was answering: pdp.v1 calls change
nothing, so a retry then asks the same question again (one more decision log line) and
never turns an answer into a different one. `waitForReady` is false: with the server down,
a call fails within its retries instead of waiting for its whole deadline.
Transparent retries (grpc retries on its own a call whose stream the server never saw)
stay on as well.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import grpc

SERVICE = "pdp.v1.Authorizer"
MAX_ATTEMPTS = 3
DEFAULT_TIMEOUT = 2.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": SERVICE}],
            "waitForReady": False,
            "retryPolicy": {
                "maxAttempts": MAX_ATTEMPTS,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS towards pdp: `ca` (PEM file path or bytes; None: the system's roots), and for
    mTLS the client's `cert` chain and `key`; `server_name` overrides the name checked in
    the server's certificate (when the target is an IP address or a unix socket)."""

    ca: str | bytes | None = None
    cert: str | bytes | None = None
    key: str | bytes | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls: cert and key go together (mTLS needs both)")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca),
            private_key=_pem(self.key),
            certificate_chain=_pem(self.cert),
        )


def _pem(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    with open(os.fspath(value), "rb") as handle:
        return handle.read()


def options(tls: Tls | None, max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Channel options: the retry policy, message sizes, and a TLS name override."""
    found: list[tuple[str, Any]] = [
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if tls is not None and tls.server_name:
        found.append(("grpc.ssl_target_name_override", tls.server_name))
    return found


def resolve_tls(tls: Tls | bool | None) -> Tls | None:
    """`True` is TLS with the system's roots; None or False is plaintext."""
    if tls is True:
        return Tls()
    if tls is None or tls is False:
        return None
    if not isinstance(tls, Tls):
        raise TypeError(f"tls: expected a pdp.client.Tls, True or None, got {tls!r}")
    return tls
