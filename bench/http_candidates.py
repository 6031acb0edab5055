"""One HTTP server candidate serving pdp's HTTP edge next to the gRPC server, on one loop.

`python -m bench.http_candidates NAME PORT BUNDLE`: NAME is `pdp` (pdp.http.wire, httptools
on asyncio: what `pdp serve --http-listen` runs), `aiohttp` (aiohttp's low-level server),
`uvicorn` (uvicorn with httptools, ASGI) or `granian` (granian's Rust server embedded in
the loop, RSGI). Each one hands requests to the same `HttpEdge.handle`, so the comparison
measures the servers alone. Prints `ready` when it listens; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from pdp.bundle import load_bundle
from pdp.decisionlog import Recorder
from pdp.http.app import HttpEdge
from pdp.http.jsonio import error_body
from pdp.http.messages import Request, WireLimits
from pdp.http.proxies import TrustedProxies
from pdp.http.wire import HttpServer
from pdp.live.store import BundleStore
from pdp.server.app import ServeConfig, start_server
from pdp.server.extauthz import ExtAuthzService
from pdp.server.limits import Limits


def _request(method: str, target: str, headers: list[tuple[str, str]], body: bytes, peer: Any):
    path, _, query = target.partition("?")
    return Request(method, target, path, query, headers, body, peer, False)


async def _pdp(edge: HttpEdge, port: int) -> Any:
    server = HttpServer(edge.handle, WireLimits(), error_body)
    await server.start_tcp("127.0.0.1", port)
    return server


async def _aiohttp(edge: HttpEdge, port: int) -> Any:
    from aiohttp import web, web_server

    async def handler(request: web.BaseRequest) -> web.Response:
        body = await request.read()
        headers = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.raw_headers
        ]
        peer = request.transport.get_extra_info("peername")[0] if request.transport else None
        answer = await edge.handle(_request(request.method, request.path_qs, headers, body, peer))
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    server = web_server.Server(handler, access_log=None)
    loop = asyncio.get_running_loop()
    return await loop.create_server(server, "127.0.0.1", port, backlog=1024)


async def _uvicorn(edge: HttpEdge, port: int) -> Any:
    import uvicorn

    async def app(scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        peer = scope["client"][0] if scope.get("client") else None
        answer = await edge.handle(_request(scope["method"], target, headers, body, peer))
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(k.encode(), v.encode("latin-1")) for k, v in answer.headers],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http="httptools", lifespan="off",
        access_log=False, log_level="warning", loop="none",
    )  # fmt: skip
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server


async def _granian(edge: HttpEdge, port: int) -> Any:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    async def app(scope: Any, proto: Any) -> None:
        body = await proto()
        headers = [(k.lower(), v) for k, v in scope.headers.items()]
        target = scope.path + (f"?{scope.query_string}" if scope.query_string else "")
        peer = scope.client.rsplit(":", 1)[0] if scope.client else None
        answer = await edge.handle(_request(scope.method, target, headers, body, peer))
        proto.response_bytes(answer.status, answer.headers, answer.body)

    server = Server(
        app, address="127.0.0.1", port=port, interface=Interfaces.RSGI, log_enabled=False
    )
    asyncio.get_running_loop().create_task(server.serve())
    await asyncio.sleep(1.0)
    return server


CANDIDATES = {"pdp": _pdp, "aiohttp": _aiohttp, "uvicorn": _uvicorn, "granian": _granian}


async def main(name: str, port: int, bundle_path: str) -> None:
    store = BundleStore()
    store.activate(load_bundle(bundle_path))
    config = ServeConfig(bundle_path=bundle_path, listen="127.0.0.1:0")
    running = await start_server(store, config)  # the gRPC server on the same loop
    recorder = Recorder()
    gateway = ExtAuthzService(store, config)
    edge = HttpEdge(store, Limits(), recorder, gateway, TrustedProxies())
    await CANDIDATES[name](edge, port)
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await running.stop(0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
