"""`pdp status --address HOST:PORT`: print a running server's bundle status."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2

from pdp.cli.common import EXIT_OK, EXIT_RUNTIME
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="show a running server's status")
    parser.add_argument("--address", default="127.0.0.1:9191", help="HOST:PORT or unix:/path")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        with grpc.insecure_channel(args.address) as channel:
            status = pb_grpc.AuthorizerStub(channel).GetStatus(
                pb.GetStatusRequest(), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"error: {args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_RUNTIME
    print(f"serving:        {'yes' if status.serving else 'no'}")
    print(f"bundle:         {status.bundle_name or '-'} ({status.bundle_path or '-'})")
    print(f"revision:       {status.bundle_revision or '-'}")
    print(f"activated at:   {_time(status, 'activated_at')}")
    print(
        f"contents:       {status.policy_count} policies, {status.template_link_count} "
        f"template links, {status.entity_count} entities"
    )
    print(f"activations:    {status.activations}")
    print(f"load failures:  {status.load_failures}")
    if status.last_error:
        print(f"last error at:  {_time(status, 'last_error_at')}")
        print("last error:")
        for line in status.last_error.splitlines():
            print(f"  {line}")
    for warning in status.warnings:
        print(f"warning:        {warning}")
    print(f"pdp version:    {status.version}")
    return EXIT_OK


def _time(status: pb.GetStatusResponse, name: str) -> str:
    if not status.HasField(name):
        return "-"
    stamp: timestamp_pb2.Timestamp = getattr(status, name)
    return datetime.fromtimestamp(stamp.ToNanoseconds() / 1e9, UTC).isoformat()
