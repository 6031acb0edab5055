"""`pdp serve BUNDLE`: load the bundle, serve gRPC and reload on change until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import sys
from functools import partial

from pdp import logs
from pdp.bundle.reload import Reloader, bundle_present
from pdp.bundle.store import BundleStore
from pdp.bundle.watcher import POLL_INTERVAL_SECONDS, WATCH_MODES, make_watcher
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, load_or_report
from pdp.decisionlog import DEFAULT_CAPACITY, Recorder, Sampling
from pdp.metrics import parse_address
from pdp.server import limits, tls
from pdp.server.app import ServeConfig, serve
from pdp.server.workers import Supervisor, prepare_metrics_dir, reserve_port

DEFAULTS = limits.Limits()


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
    parser.add_argument(
        "--watch",
        choices=WATCH_MODES,
        default="auto",
        help="reload on change: auto (inotify), poll (NFS, EFS) or off (SIGHUP only)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_seconds,
        default=POLL_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="scan interval for --watch=poll (default %(default)s)",
    )
    parser.add_argument(
        "--wait-for-bundle",
        action="store_true",
        help="start NOT_SERVING when the bundle directory is missing or empty, until it appears",
    )
    parser.add_argument(
        "--decision-log",
        default="-",
        metavar="PATH|-|off",
        help="decision log: one JSON line per decision (default - = stdout)",
    )
    parser.add_argument(
        "--decision-log-sample",
        type=_sampling,
        default=Sampling(),
        metavar="all|deny-only|RATE",
        help="log every deny and all allows, none, or this fraction of allows (default all)",
    )
    parser.add_argument(
        "--decision-log-buffer",
        type=_positive_int,
        default=DEFAULT_CAPACITY,
        metavar="N",
        help="entries queued for a slow sink before new ones are dropped (default %(default)s)",
    )
    parser.add_argument(
        "--metrics",
        type=_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default off)",
    )
    parser.add_argument(
        "--trust-plaintext-peer",
        action="store_true",
        help="ext_authz: trust Envoy's source.principal and metadata_context on a plaintext TCP "
        "port (only when nothing but Envoy can reach it; else use mTLS or a unix socket)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="server processes sharing the TCP port (SO_REUSEPORT); one per core (default 1)",
    )
    limits.add_arguments(parser)
    tls.add_arguments(parser)
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    try:  # fail fast, before the bundle and any worker: files are named in the message
        tls.check_arguments(args.tls_cert, args.tls_key, args.client_ca)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except tls.TlsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    if args.workers > 1:
        return _run_workers(args)
    return _serve(args)


def worker_main(args: argparse.Namespace) -> None:
    """Entry point of one `--workers` process (spawned: a fresh interpreter)."""
    logs.configure(args.log_level)
    raise SystemExit(_serve(args, reuse_port=True))


def _run_workers(args: argparse.Namespace) -> int:
    if args.listen.startswith("unix:"):
        print("error: --workers needs a TCP --listen address, not a unix socket", file=sys.stderr)
        return EXIT_USAGE
    waiting = args.wait_for_bundle and not bundle_present(args.bundle)
    if not waiting and load_or_report(args.bundle) is None:  # fail fast, before any worker
        return EXIT_BUNDLE
    try:
        listen, holder = reserve_port(args.listen)
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    metrics_server = None
    try:
        if args.metrics is not None:
            prepare_metrics_dir()
            from pdp.metrics import PrometheusMetrics, serve_metrics

            metrics_server = serve_metrics(args.metrics, PrometheusMetrics())
        worker_args = argparse.Namespace(**{**vars(args), "listen": listen, "metrics": None})
        return Supervisor(worker_args, worker_main).run()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if holder is not None:
            holder.close()


def _serve(args: argparse.Namespace, reuse_port: bool = False) -> int:
    store = BundleStore()
    reloader = Reloader(args.bundle, store)
    watcher = make_watcher(args.watch, args.bundle, reloader.request, args.poll_interval)
    if args.wait_for_bundle and not bundle_present(args.bundle):
        print(f"waiting for a bundle at {args.bundle} (NOT_SERVING until then)", file=sys.stderr)
        if watcher is None:
            reloader.request("waiting for a bundle")
    else:
        bundle = load_or_report(args.bundle)
        if bundle is None:
            return EXIT_BUNDLE
        store.activate(bundle)
    try:
        recorder = Recorder.start(
            args.decision_log,
            args.decision_log_sample,
            args.decision_log_buffer,
            args.metrics,
            store,
        )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    config = ServeConfig(
        bundle_path=args.bundle,
        listen=args.listen,
        limits=limits.from_args(args),
        grace_seconds=args.grace,
        recorder=recorder,
        trust_plaintext_peer=args.trust_plaintext_peer,
        reuse_port=reuse_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        unix_socket_mode=args.unix_socket_mode,
    )
    try:
        components = [reloader] if watcher is None else [reloader, watcher]
        hangup = partial(reloader.request, "SIGHUP")
        asyncio.run(serve(store, config, components, on_hangup=hangup))
    except (OSError, tls.TlsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        recorder.stop()
    return EXIT_OK


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _sampling(text: str) -> Sampling:
    try:
        return Sampling.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return int(text)


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
