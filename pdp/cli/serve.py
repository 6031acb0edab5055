"""`pdp serve BUNDLE`: load the bundle, then serve gRPC until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pdp import logs
from pdp.bundle.store import BundleStore
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_RUNTIME, load_or_report
from pdp.server.app import ServeConfig, serve
from pdp.server.limits import Limits

DEFAULTS = Limits()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve a bundle over gRPC")
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument(
        "--listen", default="127.0.0.1:9191", help="HOST:PORT or unix:/path (default %(default)s)"
    )
    parser.add_argument(
        "--max-message-bytes", type=int, default=DEFAULTS.max_message_bytes, help="per message"
    )
    parser.add_argument(
        "--max-batch", type=int, default=DEFAULTS.max_batch_items, help="items per batch call"
    )
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to drain on stop")
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    bundle = load_or_report(args.bundle)
    if bundle is None:
        return EXIT_BUNDLE
    store = BundleStore()
    store.activate(bundle)
    config = ServeConfig(
        bundle_path=args.bundle,
        listen=args.listen,
        limits=Limits(max_message_bytes=args.max_message_bytes, max_batch_items=args.max_batch),
        grace_seconds=args.grace,
    )
    try:
        asyncio.run(serve(store, config))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK
