#!/opt/pdp/bin/python
"""Kubernetes exec probes for pdp over its gRPC health service (installed as `pdp-probe`).

    pdp-probe ready ADDRESS [--service NAME]  exit 0 when NAME is SERVING (a valid bundle is active)
    pdp-probe live ADDRESS                    exit 0 when the server answers health at all,
                                              SERVING or NOT_SERVING

ADDRESS is what `pdp serve --listen` takes: HOST:PORT or unix:/path. `live` does not care
about the bundle, so a liveness probe built on it never restarts a pod for a bad bundle (the
last good one keeps serving) nor for a missing one (`--wait-for-bundle`: not ready, not dead);
it fails only when the server does not answer within --timeout. Exit 1: probe failed, with
the reason on stderr (the kubelet shows it in the pod's events); 2: usage error.

Kubernetes' native `grpc:` probe does the same as `ready` where the kubelet can reach the
port; it cannot reach a Unix socket or the pod's loopback, which is what this is for.
"""

from __future__ import annotations

import argparse
import math
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

EXIT_OK = 0
EXIT_FAILED = 1
ANSWERS_ALIVE = (
    health_pb2.HealthCheckResponse.SERVING,
    health_pb2.HealthCheckResponse.NOT_SERVING,
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    service = args.service if args.check == "ready" else ""
    try:
        with grpc.insecure_channel(args.address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_FAILED
    state = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if args.check == "ready":
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            return EXIT_OK
        print(f"{args.address}: {service or 'server'} is {state}", file=sys.stderr)
        return EXIT_FAILED
    if answer.status in ANSWERS_ALIVE:
        return EXIT_OK
    print(f"{args.address}: health answered {state}", file=sys.stderr)
    return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdp-probe", description="Kubernetes exec probes for pdp (gRPC health)."
    )
    parser.add_argument("check", choices=("ready", "live"))
    parser.add_argument("address", help="HOST:PORT or unix:/path, as given to --listen")
    parser.add_argument(
        "--service",
        default="pdp.v1.Authorizer",
        help="health service name for `ready` (default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=2.0, help="seconds (default %(default)s)"
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
