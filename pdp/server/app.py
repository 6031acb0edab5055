"""Wires the gRPC server: services, health, reflection, listener options, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_authz_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from pdp.authn.jwks import Keyring
from pdp.decisioncache import DecisionCache
from pdp.decisionlog import Recorder
from pdp.errors import ListenError
from pdp.live import Lifecycle
from pdp.live.store import BundleStatus, BundleStore
from pdp.protection import Protection
from pdp.server import listen
from pdp.server.authorizer import AuthorizerService
from pdp.server.extauthz import (
    JWKS_WAIT_SECONDS,
    ExtAuthzConfig,
    ExtAuthzService,
    recorder_listener,
)
from pdp.server.limits import Limits
from pdp.server.tls import DEFAULT_SOCKET_MODE, add_listener, tls_files
from pdp.v1 import authorizer_pb2, authorizer_pb2_grpc

log = logging.getLogger("pdp.server")


AUTHORIZER_SERVICE = authorizer_pb2.DESCRIPTOR.services_by_name["Authorizer"].full_name
EXT_AUTHZ_SERVICE = "envoy.service.auth.v3.Authorization"
HEALTH_SERVICES = ("", AUTHORIZER_SERVICE, EXT_AUTHZ_SERVICE)


class RunningEdge(Protocol):
    """A started co-edge: stopped with the gRPC server."""

    async def stop(self, grace: float) -> None: ...


class CoEdge(Protocol):
    """Another edge in the same process (the HTTP edge: `pdp.http.server.HttpConfig`).

    Started after the gRPC server with its store, limits, recorder and Check pipeline; the
    server layer knows only this shape, so `pdp.http` builds on `pdp.server` and not back.
    """

    async def start(
        self, store: BundleStore, limits: Limits, recorder: Recorder, gateway: ExtAuthzService
    ) -> RunningEdge: ...


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """How `pdp serve` listens."""

    bundle_path: str
    listen: str = "127.0.0.1:9191"
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 10.0
    reuse_port: bool = False
    recorder: Recorder | None = None  # decision log and metrics; None: neither
    trust_plaintext_peer: bool = False  # trust Envoy's source.principal on plaintext TCP
    tls_cert: str | None = None  # PEM chain; with tls_key, the listener speaks TLS
    tls_key: str | None = None
    client_ca: str | None = None  # PEM CAs; client certificates required (mTLS) when set
    unix_socket_mode: int = DEFAULT_SOCKET_MODE  # permissions of a unix: listener's socket
    http: CoEdge | None = None  # --http-listen: the HTTP edge in the same process
    protection: Protection | None = None  # limits and detectors of protection.yaml (--state)
    decision_cache: DecisionCache | None = None  # following the store; None: decide every call
    # The key sets of JWKS URLs and how long a Check waits for one to be fetched. None: a
    # keyring on the real clock; tests pass one on a manual clock, and a shorter wait.
    keyring: Keyring | None = None
    jwks_wait_seconds: float = JWKS_WAIT_SECONDS


@dataclass
class RunningServer:
    """A started server: its bound address and how to stop it."""

    server: grpc.aio.Server
    health: HealthServicer
    address: str
    http: RunningEdge | None = None

    async def stop(self, grace_seconds: float) -> None:
        await self.health.enter_graceful_shutdown()
        stopping = [self.server.stop(grace_seconds)]
        if self.http is not None:
            stopping.append(self.http.stop(grace_seconds))
        await asyncio.gather(*stopping)


async def start_server(store: BundleStore, config: ServeConfig) -> RunningServer:
    """Build and start the server on the running loop; health follows the store."""
    options = [
        ("grpc.max_receive_message_length", config.limits.max_message_bytes),
        ("grpc.max_send_message_length", config.limits.max_message_bytes),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
    ]
    server = grpc.aio.server(options=options)
    authorizer_pb2_grpc.add_AuthorizerServicer_to_server(
        AuthorizerService(
            store,
            config.limits,
            bundle_path=config.bundle_path,
            recorder=config.recorder,
            protection=config.protection,
            cache=config.decision_cache,
        ),
        server,
    )
    names = [AUTHORIZER_SERVICE]
    check = ExtAuthzConfig(
        listen=config.listen,
        client_ca=config.client_ca,
        trust_plaintext_peer=config.trust_plaintext_peer,
        limits=config.limits,
        decision_cache=config.decision_cache,
        jwks_wait_seconds=config.jwks_wait_seconds,
    )
    ext_authz = ExtAuthzService(
        store,
        check,
        keyring=config.keyring,
        on_result=recorder_listener(config.recorder),
        protection=config.protection,
    )
    ext_authz_pb2_grpc.add_AuthorizationServicer_to_server(ext_authz, server)
    names.append(EXT_AUTHZ_SERVICE)

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    names.append(reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)

    loop = asyncio.get_running_loop()

    async def set_health(serving: bool) -> None:
        state = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in HEALTH_SERVICES:
            await health.set(service, state)

    def on_status(status: BundleStatus) -> None:
        asyncio.run_coroutine_threadsafe(set_health(status.serving), loop)

    await set_health(store.current is not None)
    store.subscribe(on_status)

    port = _bind(server, config)
    address = config.listen
    if not config.listen.startswith("unix:"):
        address = f"{config.listen.rsplit(':', 1)[0]}:{port}"
    await server.start()
    http = None
    if config.http is not None:  # the HTTP edge shares the store, recorder and key sets
        try:
            http = await config.http.start(
                store, config.limits, config.recorder or Recorder(), ext_authz
            )
        except BaseException:
            await server.stop(0)
            raise
    log.info("listening", extra={"event": "listening", "address": address})
    return RunningServer(server, health, address, http)


def _bind(server: grpc.aio.Server, config: ServeConfig) -> int:
    """Add the listener; ListenError naming --listen and the cause when it cannot be bound.

    A plain socket bind is tried first: it tells why (in use, not available, ...) where grpc
    only says that it could not, and a busy port then never reaches grpc at all.
    """
    address = listen.parse(config.listen)  # ValueError for a malformed one
    where = f"--listen {config.listen}: cannot listen"
    if address.unix and _unix_socket_in_use(address.path):
        raise ListenError(f"{where}: another server is listening there")
    problem = listen.bind_problem(address, config.reuse_port)
    if problem is not None:
        raise ListenError(f"{where}: {problem}")
    files = tls_files(config.tls_cert, config.tls_key, config.client_ca)
    port = add_listener(server, config.listen, files, config.unix_socket_mode)
    if port == 0:  # taken in between, or a cause the probe does not see
        problem = listen.bind_problem(address, config.reuse_port) or "grpc could not bind it"
        raise ListenError(f"{where}: {problem}")
    return port


def _unix_socket_in_use(path: str) -> bool:
    """True when a live server accepts on `path` (grpc would silently unlink and replace it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


async def serve(
    store: BundleStore,
    config: ServeConfig,
    components: Sequence[Lifecycle] = (),
    on_hangup: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight calls finish within the grace period.

    `components` (the bundle watcher, ...) start before the listener and stop, last first,
    before the drain. SIGHUP calls `on_hangup` (a bundle reload) when given.
    """
    # Handlers first: a signal that comes as soon as "listening" is logged still drains.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    started: list[Lifecycle] = []
    try:
        for component in components:
            component.start()
            started.append(component)
        if on_hangup is not None:  # before "listening": SIGHUP's default action would kill us
            loop.add_signal_handler(signal.SIGHUP, on_hangup)
        running = await start_server(store, config)
        await stopping.wait()
        log.info(
            "shutting down", extra={"event": "stopping", "grace_seconds": config.grace_seconds}
        )
        while started:
            await asyncio.to_thread(started.pop().stop)
        await running.stop(config.grace_seconds)
        log.info("stopped", extra={"event": "stopped"})
    finally:
        while started:
            started.pop().stop()
        if config.protection is not None:
            await config.protection.close()
