"""Starting and stopping the HTTP edge next to the gRPC server: listener, TLS, warnings."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass, field

from pdp.decisionlog import Recorder
from pdp.errors import ListenError
from pdp.http.app import HttpEdge
from pdp.http.jsonio import error_body
from pdp.http.messages import WireLimits
from pdp.http.proxies import LOOPBACK, Network, TrustedProxies, parse_cidrs
from pdp.http.wire import HttpServer
from pdp.live.store import BundleStore
from pdp.server import listen
from pdp.server.extauthz import ExtAuthzService
from pdp.server.limits import Limits
from pdp.server.tls import DEFAULT_SOCKET_MODE

log = logging.getLogger("pdp.http")


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """How `pdp serve --http-listen` serves HTTP."""

    listen: str
    trusted_proxies: tuple[Network, ...] = field(
        default_factory=lambda: parse_cidrs(",".join(LOOPBACK))
    )
    authzen_base_url: str | None = None
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 1024
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    unix_socket_mode: int = DEFAULT_SOCKET_MODE
    reuse_port: bool = False

    async def start(
        self, store: BundleStore, limits: Limits, recorder: Recorder, gateway: ExtAuthzService
    ) -> RunningHttp:
        """Start beside a gRPC server (`server.app.CoEdge`), sharing its store and key sets."""
        return await start_http(store, self, limits, recorder, gateway)


@dataclass
class RunningHttp:
    server: HttpServer
    address: str

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)


async def start_http(
    store: BundleStore,
    config: HttpConfig,
    limits: Limits,
    recorder: Recorder,
    gateway: ExtAuthzService,
) -> RunningHttp:
    """Bind and serve; ListenError naming --http-listen when it cannot be bound."""
    edge = HttpEdge(
        store, limits, recorder, gateway, TrustedProxies(config.trusted_proxies),
        config.authzen_base_url,
    )  # fmt: skip
    wire = WireLimits(
        max_body_bytes=limits.max_message_bytes,
        max_headers=limits.max_headers,
        max_header_bytes=limits.max_header_bytes,
        max_target_bytes=limits.max_path_bytes,
        request_timeout=config.request_timeout,
        idle_timeout=config.idle_timeout,
        max_connections=config.max_connections,
    )
    server = HttpServer(edge.handle, wire, error_body)
    address = listen.parse(config.listen)
    where = f"--http-listen {config.listen}: cannot listen"
    context = _tls_context(config)
    if address.unix:
        if _unix_in_use(address.path):
            raise ListenError(f"{where}: another server is listening there")
        problem = listen.bind_problem(address)
        if problem is not None:
            raise ListenError(f"{where}: {problem}")
        if os.path.exists(address.path):
            os.unlink(address.path)  # a stale socket file (none is listening: checked above)
        mask = os.umask(0o177)
        try:
            await server.start_unix(address.path, context)
        finally:
            os.umask(mask)
        os.chmod(address.path, config.unix_socket_mode)
        bound = config.listen
    else:
        problem = listen.bind_problem(address, config.reuse_port)
        if problem is not None:
            raise ListenError(f"{where}: {problem}")
        try:
            started = await server.start_tcp(address.host, address.port, context, config.reuse_port)
        except OSError as exc:
            raise ListenError(f"{where}: {listen.describe(exc)}") from None
        host, port = started.sockets[0].getsockname()[:2]
        bound = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info(
        "HTTP listening",
        extra={"event": "http_listening", "address": bound, "tls": context is not None},
    )
    if context is None and not address.unix and not _loopback(address.host):
        log.warning(
            f"--http-listen {config.listen} is plaintext and not loopback: the AuthZEN and "
            "/v1 routes decide whatever any caller who reaches the port asks; bind to "
            "127.0.0.1 or a unix socket, or use --tls-cert/--tls-key (and --client-ca)",
            extra={"event": "http_untrusted_transport", "listen": config.listen},
        )
    return RunningHttp(server, bound)


def _tls_context(config: HttpConfig) -> ssl.SSLContext | None:
    """The listener's TLS (the same files as the gRPC port's); mTLS when a client CA is set."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if config.client_ca is not None:
        context.load_verify_locations(config.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unix_in_use(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True
