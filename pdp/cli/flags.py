"""Flags of `pdp serve` built from tables: the request limits and the transport security."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from pdp.cli import argtypes
from pdp.routes.paths import MAX_PATH_BYTES
from pdp.server.limits import FLAG_NAMES, Limits
from pdp.server.tls import DEFAULT_SOCKET_MODE

# Limit field -> (help, accepted range); the flag is FLAG_NAMES[field], the default Limits().
LIMIT_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "max_entities": (
        "request entities per call (a batch: shared, and per item)",
        argtypes.whole(1),
    ),
    "max_depth": (  # Cedar's JSON parser refuses a context nested deeper than 128 levels
        "nesting of objects and lists in context, attrs and tags",
        argtypes.whole(1, 128),
    ),
    "max_id_length": ("characters of an entity type or id", argtypes.whole(1)),
    "max_string_length": ("characters of any other string or key", argtypes.whole(1)),
    "max_context_keys": ("record keys in a context, all levels", argtypes.whole(1)),
    "max_ancestors": ("entity-ancestor pairs of the request entities", argtypes.whole(1)),
    "eval_timeout_seconds": ("seconds of evaluation per call; 0: no bound", argtypes.seconds(0)),
    "max_headers": ("Check: HTTP headers per request", argtypes.whole(1)),
    "max_header_bytes": ("Check: bytes of all header names and values", argtypes.whole(1)),
    "max_path_bytes": (  # never more than the normalizer reads (a flag must not promise more)
        f"Check: bytes of the path with its query, at most {MAX_PATH_BYTES}",
        argtypes.whole(1, MAX_PATH_BYTES),
    ),
}


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit flags of `pdp serve` (besides --max-message-bytes and --max-batch)."""
    defaults = Limits()
    for name, (text, kind) in LIMIT_FLAGS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            FLAG_NAMES[name],
            dest=name,
            type=kind,
            default=default,
            metavar="SECONDS" if isinstance(default, float) else "N",
            help=f"{text} (default {default})",
        )


def limits_from_args(args: argparse.Namespace) -> Limits:
    """The Limits the parsed flags ask for; defaults for flags the parser does not have."""
    values = {f.name: getattr(args, f.name) for f in fields(Limits) if hasattr(args, f.name)}
    values["max_message_bytes"] = args.max_message_bytes
    values["max_batch_items"] = args.max_batch
    return Limits(**values)


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """The transport security flags of `pdp serve`."""
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve TLS")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--client-ca",
        metavar="FILE",
        help="PEM CA certificates: require client certificates they signed (mTLS)",
    )
    parser.add_argument(
        "--unix-socket-mode",
        type=argtypes.octal_mode,
        default=DEFAULT_SOCKET_MODE,
        metavar="OCTAL",
        help="permissions of a unix: listener's socket (default 0660)",
    )
