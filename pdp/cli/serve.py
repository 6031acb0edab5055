"""`pdp serve BUNDLE`: load the bundle, serve gRPC and reload on change until SIGTERM/SIGINT.

After its flags parse, everything `pdp serve` writes to stderr is a JSON log line, start-time
errors included; a usage error (exit 2) is argparse's plain text.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from pdp import logs
from pdp.cli import argtypes, flags, http_flags, protection_flags, sources
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_RUNTIME
from pdp.decisioncache import DEFAULT_SIZE as DECISION_CACHE_SIZE
from pdp.decisioncache import DecisionCache
from pdp.decisionlog import DEFAULT_CAPACITY, Recorder, Sampling
from pdp.errors import StateConfigError, TlsError
from pdp.live.fetch import is_url
from pdp.live.reload import bundle_present
from pdp.live.store import BundleStore
from pdp.live.watcher import POLL_INTERVAL_SECONDS, WATCH_MODES
from pdp.metrics import (
    Metrics,
    MetricsServer,
    PrometheusMetrics,
    multiprocess_mode,
    serve_metrics,
)
from pdp.server import listen, tls
from pdp.server.app import ServeConfig, serve
from pdp.server.limits import Limits
from pdp.server.workers import Supervisor, prepare_metrics_dir, reserve_port

log = logging.getLogger("pdp.serve")

DEFAULTS = Limits()
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_WORKERS = 256
MAX_DECISION_LOG_BUFFER = 1_000_000
MAX_DECISION_CACHE = 10_000_000
# grpc's C core prints its own plain-text lines on stderr (a busy port, every failed TLS
# handshake); pdp reports what matters as JSON. An operator's own GRPC_VERBOSITY wins.
GRPC_VERBOSITY = "GRPC_VERBOSITY"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="serve a bundle over gRPC")
    parser.add_argument("bundle", help="bundle directory, or https:// URL of a signed archive")
    parser.add_argument(
        "--listen",
        default="127.0.0.1:9191",
        type=argtypes.listen_address,
        metavar="ADDRESS",
        help="HOST:PORT, [IPv6]:PORT or unix:/path (default %(default)s)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=argtypes.whole(1024, argtypes.GRPC_MAX_MESSAGE_BYTES),
        default=DEFAULTS.max_message_bytes,
        metavar="N",
        help="bytes of one gRPC message, received or sent (default %(default)s; "
        "1024 to 2^31-1, grpc's maximum)",
    )
    parser.add_argument(
        "--max-batch",
        type=argtypes.whole(1),
        default=DEFAULTS.max_batch_items,
        metavar="N",
        help="items per BatchIsAuthorized call (default %(default)s)",
    )
    parser.add_argument(
        "--grace",
        type=argtypes.seconds(0),
        default=10.0,
        metavar="SECONDS",
        help="time in-flight calls get to finish on SIGTERM/SIGINT (default %(default)s)",
    )
    parser.add_argument(
        "--watch",
        choices=WATCH_MODES,
        default="auto",
        help="reload on change: auto (inotify), poll (NFS, EFS) or off (SIGHUP only)",
    )
    parser.add_argument(
        "--poll-interval",
        type=argtypes.seconds(0.1, 3600),
        default=POLL_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="scan interval for --watch=poll, 0.1 to 3600 (default %(default)s)",
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
        type=argtypes.sampling,
        default=Sampling(),
        metavar="all|deny-only|RATE",
        help="log every deny and all allows, none, or this fraction of allows (default all)",
    )
    parser.add_argument(
        "--decision-log-buffer",
        type=argtypes.whole(1, MAX_DECISION_LOG_BUFFER),
        default=DEFAULT_CAPACITY,
        metavar="N",
        help="entries queued for a slow sink before new ones are dropped (default %(default)s)",
    )
    parser.add_argument(
        "--decision-log-requests",
        choices=("default", "full"),
        default="default",
        help="full: log every decision's context and request entities (masked as the "
        "manifest says) so `pdp replay` can re-decide them (default: as the manifest says)",
    )
    parser.add_argument(
        "--decision-cache-size",
        type=argtypes.whole(0, MAX_DECISION_CACHE),
        default=DECISION_CACHE_SIZE,
        metavar="N",
        help="decisions kept to answer a repeated request without Cedar, per process, "
        "cleared on every reload; 0 turns the cache off (default %(default)s)",
    )
    parser.add_argument(
        "--metrics",
        type=argtypes.tcp_address,
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
        type=argtypes.whole(1, MAX_WORKERS),
        default=1,
        metavar="N",
        help="server processes sharing the TCP port (SO_REUSEPORT); one per core (default 1)",
    )
    sources.add_arguments(parser)
    flags.add_limit_arguments(parser)
    flags.add_tls_arguments(parser)
    http_flags.add_arguments(parser)
    protection_flags.add_arguments(parser)
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
        help="least severe server log line written to stderr (default %(default)s)",
    )
    parser.set_defaults(run=run, parser=parser)


def check_usage(args: argparse.Namespace) -> None:
    """Flags that only make sense together: a usage error (exit 2), like argparse's own."""
    try:
        tls.tls_files(args.tls_cert, args.tls_key, args.client_ca)
    except ValueError as exc:
        args.parser.error(str(exc))
    problem = protection_flags.check_arguments(args)
    if problem is not None:
        args.parser.error(problem)
    sources.check_arguments(args)
    if args.workers > 1 and args.listen.startswith(listen.UNIX_PREFIX):
        args.parser.error("--workers needs a TCP --listen address, not a unix socket")
    if args.workers > 1 and (args.http_listen or "").startswith(listen.UNIX_PREFIX):
        args.parser.error("--workers needs a TCP --http-listen address, not a unix socket")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault(GRPC_VERBOSITY, "NONE")  # before grpc starts; the workers inherit it
    check_usage(args)
    logs.configure(args.log_level)
    try:  # fail fast, before the bundle and any worker: files are named in the message
        tls.check_arguments(args.tls_cert, args.tls_key, args.client_ca)
    except TlsError as exc:
        return _failed(EXIT_RUNTIME, str(exc))
    try:
        return _run_workers(args) if args.workers > 1 else _serve(args)
    except Exception:  # a bug: still one JSON line (with the traceback), never plain text
        log.exception("pdp serve failed", extra={"event": "crashed", "exit_code": EXIT_RUNTIME})
        return EXIT_RUNTIME


def worker_main(args: argparse.Namespace) -> None:
    """Entry point of one `--workers` process (spawned: a fresh interpreter)."""
    logs.configure(args.log_level)
    try:
        code = _serve(args, reuse_port=True)
    except Exception:
        log.exception("worker failed", extra={"event": "crashed", "exit_code": EXIT_RUNTIME})
        code = EXIT_RUNTIME
    raise SystemExit(code)


def _run_workers(args: argparse.Namespace) -> int:
    waiting = args.wait_for_bundle and not bundle_present(args.bundle)
    if not waiting and not is_url(args.bundle) and sources.load(args.bundle) is None:
        return EXIT_BUNDLE
    address = listen.parse(args.listen)
    # Without SO_REUSEPORT: the workers would share a port with anything else that set it.
    problem = listen.bind_problem(address) if address.port else None
    if problem is not None:
        return _failed(EXIT_RUNTIME, f"--listen {args.listen}: cannot listen: {problem}")
    metrics_problem = _metrics_problem(args.metrics)
    if metrics_problem is not None:
        return _failed(EXIT_RUNTIME, metrics_problem)
    if args.http_listen is not None:
        problem = listen.bind_problem(listen.parse(args.http_listen))
        if problem is not None:
            where = f"--http-listen {args.http_listen}"
            return _failed(EXIT_RUNTIME, f"{where}: cannot listen: {problem}")
    try:
        reserved, holder = reserve_port(args.listen)
    except OSError as exc:
        return _failed(
            EXIT_RUNTIME, f"--listen {args.listen}: cannot listen: {listen.describe(exc)}"
        )
    http_reserved, http_holder = args.http_listen, None
    if args.http_listen is not None:
        try:
            http_reserved, http_holder = reserve_port(args.http_listen)
        except OSError as exc:
            if holder is not None:
                holder.close()
            where = f"--http-listen {args.http_listen}"
            return _failed(EXIT_RUNTIME, f"{where}: cannot listen: {listen.describe(exc)}")
    metrics_server = None
    try:
        if args.metrics is not None:
            prepare_metrics_dir()  # before prometheus_client loads (PrometheusMetrics)
            try:
                metrics_server = serve_metrics(args.metrics, PrometheusMetrics())
            except OSError as exc:
                return _failed(EXIT_RUNTIME, _metrics_error(args.metrics, exc))
        # Without the parser: its value types are closures, which a spawned worker cannot get.
        worker_args = argparse.Namespace(
            **{
                **vars(args),
                "listen": reserved,
                "http_listen": http_reserved,
                "metrics": None,
                "parser": None,
            }
        )
        return Supervisor(worker_args, worker_main).run()
    except OSError as exc:
        return _failed(EXIT_RUNTIME, str(exc))
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if holder is not None:
            holder.close()
        if http_holder is not None:
            http_holder.close()


def _serve(args: argparse.Namespace, reuse_port: bool = False) -> int:
    if not reuse_port:  # a worker's metrics are the supervisor's, checked there
        metrics_problem = _metrics_problem(args.metrics)
        if metrics_problem is not None:
            return _failed(EXIT_RUNTIME, metrics_problem)
    store = BundleStore()
    try:
        metrics, metrics_server = _start_metrics(args.metrics)
    except OSError as exc:
        return _failed(EXIT_RUNTIME, _metrics_error(args.metrics, exc))
    source = sources.open_source(args, store, metrics.bundle_fetch)
    if isinstance(source, int):
        if metrics_server is not None:
            metrics_server.stop()
        return source
    try:
        recorder = Recorder.start(
            args.decision_log,
            args.decision_log_sample,
            args.decision_log_buffer,
            metrics,
            store,
            alerts=args.alerts,
            full_requests=args.decision_log_requests == "full",
        )
    except OSError as exc:
        if metrics_server is not None:
            metrics_server.stop()
        flag = "--alerts" if exc.filename and exc.filename == args.alerts else "--decision-log"
        where = exc.filename or args.decision_log
        return _failed(EXIT_RUNTIME, f"{flag} {where}: cannot open: {exc.strerror or exc}")
    try:
        protection = protection_flags.protection_from_args(args, recorder, metrics)
    except StateConfigError as exc:
        recorder.stop()
        if metrics_server is not None:
            metrics_server.stop()
        return _failed(EXIT_RUNTIME, str(exc))
    components = list(source.components)
    if args.shadow is not None:
        shadow = sources.open_shadow(args, metrics)
        if isinstance(shadow, int):
            recorder.stop()
            if metrics_server is not None:
                metrics_server.stop()
            return shadow
        recorder.shadow = shadow.shadow
        components = [*components, *shadow.components]
    cache = DecisionCache(args.decision_cache_size, metrics.decision_cache)
    store.subscribe(cache.status_listener)  # cleared on every swap
    config = ServeConfig(
        bundle_path=args.bundle,
        listen=args.listen,
        limits=flags.limits_from_args(args),
        grace_seconds=args.grace,
        recorder=recorder,
        trust_plaintext_peer=args.trust_plaintext_peer,
        reuse_port=reuse_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        unix_socket_mode=args.unix_socket_mode,
        http=http_flags.from_args(args, reuse_port),
        protection=protection,
        decision_cache=cache,
    )
    try:
        asyncio.run(serve(store, config, components, on_hangup=source.on_hangup))
    except (OSError, TlsError) as exc:
        return _failed(EXIT_RUNTIME, str(exc))
    finally:
        if recorder.shadow is not None:
            recorder.shadow.stop()  # its last records go on to the log
        recorder.stop()
        if metrics_server is not None:
            metrics_server.stop()
    return EXIT_OK


def _start_metrics(address: str | None) -> tuple[Metrics, MetricsServer | None]:
    """The metrics to record into, and the `/metrics` endpoint when `--metrics` asks for one.

    Metrics are recorded when `--metrics` is given, and in multiprocess mode
    (PROMETHEUS_MULTIPROC_DIR set) by every worker, whichever process serves them.
    OSError when the endpoint cannot be bound.
    """
    if address is None and not multiprocess_mode():
        return Metrics(), None
    prometheus = PrometheusMetrics()
    server = serve_metrics(address, prometheus) if address is not None else None
    return prometheus, server


def _failed(code: int, message: str) -> int:
    """Log why `pdp serve` cannot start (or stops) as JSON; return the exit code."""
    log.error(message, extra={"event": "start_failed", "exit_code": code})
    return code


def _metrics_problem(address: str | None) -> str | None:
    """Why --metrics cannot be served, found before anything starts; None when it can."""
    if address is None:
        return None
    parsed = listen.parse(address, unix=False)
    problem = listen.bind_problem(parsed) if parsed.port else None
    return None if problem is None else f"--metrics {address}: cannot listen: {problem}"


def _metrics_error(address: str | None, exc: OSError) -> str:
    return f"--metrics {address}: cannot listen: {listen.describe(exc)}"
