"""The floor as one server: the empty grpc.aio handler doing what `bench/inproc.py` does.

The handler decides with cedarpy alone (request entities merged with `with_added_json_str`,
the bundle's pre-parsed handles, the whole policy set) and answers the decision: no limits,
no slicing, no decision log. What this server costs beyond the empty handler is what
cedarpy costs inside a gRPC server; what `pdp serve` costs beyond this server is pdp's own.
Usage: python -m bench.cedar_server PORT BUNDLE_DIR
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import cedarpy
import grpc

from bench.empty_server import OPTIONS, EmptyAuthorizer
from pdp.bundle import load_bundle
from pdp.bundle.compiler import CompiledBundle
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc


class CedarAuthorizer(EmptyAuthorizer):
    """IsAuthorized decided by cedarpy directly, as a caller of its public API would."""

    def __init__(self, bundle: CompiledBundle) -> None:
        self._bundle = bundle

    async def IsAuthorized(
        self, request: pb.IsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.IsAuthorizedResponse:
        bundle = self._bundle
        cedar = {
            name: {"type": uid.type, "id": uid.id}
            for name, uid in (
                ("principal", request.principal),
                ("action", request.action),
                ("resource", request.resource),
            )
        }
        if request.context_json:
            cedar["context"] = json.loads(request.context_json)
        entities = bundle.entities
        if request.entities_json:
            entities = entities.with_added_json_str(request.entities_json, bundle.schema)
        result = cedarpy.is_authorized(cedar, bundle.policy_set, entities, bundle.schema)
        allowed = result.decision is cedarpy.Decision.Allow
        return pb.IsAuthorizedResponse(decision=pb.DECISION_ALLOW if allowed else pb.DECISION_DENY)


async def main(port: int, bundle_dir: str) -> None:
    """Serve on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    bundle = load_bundle(Path(bundle_dir))
    server = grpc.aio.server(options=OPTIONS)
    pb_grpc.add_AuthorizerServicer_to_server(CedarAuthorizer(bundle), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
