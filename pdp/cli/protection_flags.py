"""The `pdp serve` flags of edge protection (--state, its TLS and auth, --alerts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pdp.cli import argtypes
from pdp.errors import StateConfigError
from pdp.metrics import Metrics
from pdp.protection import MemoryState, Protection
from pdp.protection.guard import Events
from pdp.protection.memory import DEFAULT_MAX_KEYS
from pdp.protection.redisstate import DEFAULT_TIMEOUT, RedisOptions, RedisState, client_of

MAX_PASSWORD_BYTES = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        default="memory",
        type=_state,
        metavar="memory|redis://HOST:PORT/DB|rediss://...",
        help="where protection.yaml's buckets, counters and blocks live: this process "
        "(default) or a Redis shared by every replica (docs/protection.md)",
    )
    parser.add_argument(
        "--state-password-file",
        metavar="FILE",
        help="the Redis password (AUTH), read from FILE (never put it in a command line)",
    )
    parser.add_argument(
        "--state-ca", metavar="FILE", help="PEM CAs that verify a rediss:// (TLS) Redis"
    )
    parser.add_argument(
        "--state-cert", metavar="FILE", help="PEM client certificate for a rediss:// Redis"
    )
    parser.add_argument("--state-key", metavar="FILE", help="PEM private key of --state-cert")
    parser.add_argument(
        "--state-timeout",
        type=argtypes.seconds(0.001, 5),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long one request waits for Redis before the in-process fallback answers "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--state-max-keys",
        type=argtypes.whole(100, 100_000_000),
        default=DEFAULT_MAX_KEYS,
        metavar="N",
        help="in-process buckets and counters kept, each (least recently used evicted; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--alerts",
        metavar="PATH|-",
        help="write protection events to PATH (or - for stdout) instead of the decision log",
    )


def check_arguments(args: argparse.Namespace) -> str | None:
    """Why the protection flags cannot work together; None when they can."""
    if args.state == "memory":
        extra = [
            name
            for name in ("state_password_file", "state_ca", "state_cert", "state_key")
            if getattr(args, name) is not None
        ]
        if extra:
            flag = "--" + extra[0].replace("_", "-")
            return f"{flag} needs --state redis://... or rediss://..."
    if (args.state_cert is None) != (args.state_key is None):
        return "--state-cert and --state-key go together"
    if (args.state_ca or args.state_cert) and not args.state.startswith("rediss://"):
        return "--state-ca and --state-cert need a rediss:// (TLS) --state URL"
    return None


def protection_from_args(
    args: argparse.Namespace, events: Events | None, metrics: Metrics | None
) -> Protection:
    """The protection runtime `pdp serve` hands the gateway: it reports to `events`, and a
    Redis state that stops (or resumes) answering to `metrics`; StateConfigError when a file
    cannot be read or the URL is not usable."""
    memory = MemoryState(max_keys=args.state_max_keys)
    if args.state == "memory":
        return Protection(memory, events)
    password = None
    if args.state_password_file is not None:
        password = _read_password(args.state_password_file)
    options = RedisOptions(
        url=args.state,
        password=password,
        ca_file=args.state_ca,
        cert_file=args.state_cert,
        key_file=args.state_key,
        timeout=args.state_timeout,
    )
    on_fallback = metrics.protection_fallback if metrics is not None else None
    state = RedisState(client_of(options), memory, options.timeout, on_fallback=on_fallback)
    return Protection(state, events)


def _read_password(path: str) -> str:
    try:
        data = Path(path).read_bytes()[: MAX_PASSWORD_BYTES + 1]
    except OSError as exc:
        raise StateConfigError(
            f"--state-password-file {path}: cannot read: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise StateConfigError(f"--state-password-file {path}: over {MAX_PASSWORD_BYTES} bytes")
    try:
        return data.decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        raise StateConfigError(f"--state-password-file {path}: not UTF-8 text") from None


def _state(text: str) -> str:
    if text == "memory" or text.startswith(("redis://", "rediss://")):
        return text
    raise argparse.ArgumentTypeError("use memory, redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
