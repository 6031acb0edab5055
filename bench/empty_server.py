"""The transport floor: a bare grpc.aio server answering pdp.v1 with empty responses.

Same stack as `pdp serve` (grpc.aio, the generated pdp.v1 servicer, so requests are parsed
the same way, same channel options), with nothing behind the handler.
Usage: python -m bench.empty_server PORT [BURN_US]: with BURN_US, IsAuthorized first spins
that many µs of thread CPU time (what any handler costing that much costs in this server).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import grpc

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc

OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


class EmptyAuthorizer(pb_grpc.AuthorizerServicer):
    """Every method answers an empty message: the cost of gRPC alone."""

    burn = 0.0  # seconds of thread CPU time IsAuthorized spins first

    async def IsAuthorized(
        self, request: pb.IsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.IsAuthorizedResponse:
        if self.burn:
            until = time.thread_time() + self.burn
            while time.thread_time() < until:
                pass
        return pb.IsAuthorizedResponse()

    async def BatchIsAuthorized(
        self, request: pb.BatchIsAuthorizedRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchIsAuthorizedResponse:
        return pb.BatchIsAuthorizedResponse()

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(serving=True)


async def main(port: int, burn_us: float = 0.0) -> None:
    """Serve on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    server = grpc.aio.server(options=OPTIONS)
    servicer = EmptyAuthorizer()
    servicer.burn = burn_us / 1e6
    pb_grpc.add_AuthorizerServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
