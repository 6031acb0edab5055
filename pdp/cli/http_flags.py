"""The `pdp serve` flags of the HTTP edge, and the HttpConfig they ask for."""

from __future__ import annotations

import argparse

from pdp.cli import argtypes
from pdp.http.authzen import check_base_url
from pdp.http.proxies import LOOPBACK, Network, parse_cidrs
from pdp.http.server import HttpConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http-listen",
        type=argtypes.listen_address,
        metavar="ADDRESS",
        help="also serve HTTP (AuthZEN, /v1 JSON, /forward-auth, /healthz, /readyz) on "
        "HOST:PORT, [IPv6]:PORT or unix:/path (default off)",
    )
    parser.add_argument(
        "--http-trusted-proxies",
        type=_cidrs,
        default=parse_cidrs(",".join(LOOPBACK)),
        metavar="CIDR[,CIDR...]",
        help="peers whose X-Forwarded-*/X-Original-* headers /forward-auth believes; others "
        f"are refused (default {','.join(LOOPBACK)}; a unix socket peer is trusted)",
    )
    parser.add_argument(
        "--authzen-base-url",
        type=_base_url,
        metavar="URL",
        help="the PDP identifier in /.well-known/authzen-configuration (default: from the "
        "request's scheme and Host)",
    )
    parser.add_argument(
        "--http-request-timeout",
        type=argtypes.seconds(0.1, 3600),
        default=10.0,
        metavar="SECONDS",
        help="time for a request's headers and body to arrive (default %(default)s)",
    )
    parser.add_argument(
        "--http-idle-timeout",
        type=argtypes.seconds(0.1, 3600),
        default=60.0,
        metavar="SECONDS",
        help="time a kept-alive connection may wait for its next request (default %(default)s)",
    )
    parser.add_argument(
        "--http-max-connections",
        type=argtypes.whole(1, 1_000_000),
        default=1024,
        metavar="N",
        help="open HTTP connections at once; more are answered 503 (default %(default)s)",
    )


def from_args(args: argparse.Namespace, reuse_port: bool = False) -> HttpConfig | None:
    """The HttpConfig the flags ask for; None without --http-listen."""
    if getattr(args, "http_listen", None) is None:
        return None
    return HttpConfig(
        listen=args.http_listen,
        trusted_proxies=args.http_trusted_proxies,
        authzen_base_url=args.authzen_base_url,
        request_timeout=args.http_request_timeout,
        idle_timeout=args.http_idle_timeout,
        max_connections=args.http_max_connections,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        unix_socket_mode=args.unix_socket_mode,
        reuse_port=reuse_port,
    )


def _cidrs(text: str) -> tuple[Network, ...]:
    return argtypes.parsed(parse_cidrs, text)


def _base_url(text: str) -> str:
    return argtypes.parsed(check_base_url, text)
