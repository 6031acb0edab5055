"""`pdp status --address ADDRESS`: a running server's bundle status; exit 3 when not serving."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import grpc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor

from pdp.cli import argtypes
from pdp.cli.common import EXIT_BUNDLE, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc

MAX_PEM_BYTES = 1024 * 1024


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show a running server's status (exit 3 when it serves no bundle)",
        description="Exit codes: 0 serving, 1 unreachable or the call failed, 2 usage error, "
        "3 reachable but not serving (no valid bundle): usable as a readiness probe.",
    )
    parser.add_argument(
        "--address",
        default="127.0.0.1:9191",
        type=argtypes.listen_address,
        help="HOST:PORT, [IPv6]:PORT or unix:/path (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=argtypes.seconds(0, 3600, low_open=True),
        default=5.0,
        metavar="SECONDS",
        help="give up after this long (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print every status field as JSON")
    parser.add_argument(
        "--protection",
        action="store_true",
        help="also print edge protection: its state, mode and the active blocks",
    )
    parser.add_argument(
        "--tls-ca", metavar="FILE", help="PEM CA certificates: connect over TLS, verify the server"
    )
    parser.add_argument(
        "--tls-cert", metavar="FILE", help="PEM client certificate chain, for an mTLS listener"
    )
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="the name the server certificate must carry, when not the --address host",
    )
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if (args.tls_cert is None) != (args.tls_key is None):
        args.parser.error("--tls-cert and --tls-key go together")
    tls = args.tls_ca is not None or args.tls_cert is not None
    if args.tls_server_name is not None and not tls:
        args.parser.error("--tls-server-name needs --tls-ca or --tls-cert and --tls-key")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # its plain-text lines; errors are below
    try:
        channel = _channel(args) if tls else grpc.insecure_channel(args.address)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with channel:
            status = pb_grpc.AuthorizerStub(channel).GetStatus(
                pb.GetStatusRequest(), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"error: {args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_RUNTIME
    if args.json:
        print(json.dumps(as_json(status), ensure_ascii=False))
    else:
        _print_text(status)
        if args.protection:
            _print_protection(status)
    return EXIT_OK if status.serving else EXIT_BUNDLE


def _channel(args: argparse.Namespace) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.tls_ca, "--tls-ca"),
        private_key=_read(args.tls_key, "--tls-key"),
        certificate_chain=_read(args.tls_cert, "--tls-cert"),
    )
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.secure_channel(args.address, credentials, options=options)


def _read(path: str | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise OSError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES or b"-----BEGIN " not in data:
        raise OSError(f"{flag} {path}: not a PEM file")
    return data


def as_json(status: pb.GetStatusResponse) -> dict[str, Any]:
    """Every field of the response by its proto name: times as RFC 3339 text (null when unset),
    counts as numbers."""
    out: dict[str, Any] = {}
    for field in status.DESCRIPTOR.fields:
        value = getattr(status, field.name)
        if field.message_type is not None and field.message_type.full_name == (
            timestamp_pb2.Timestamp.DESCRIPTOR.full_name
        ):
            out[field.name] = value.ToJsonString() if status.HasField(field.name) else None
        elif field.message_type is not None and not _repeated(field):
            out[field.name] = (
                json_format.MessageToDict(value, preserving_proto_field_name=True)
                if status.HasField(field.name)
                else None
            )
        elif _repeated(field):
            out[field.name] = list(value)
        else:
            out[field.name] = value
    return out


def _repeated(field: Any) -> bool:  # Any: protobuf 6 and 7 descriptors differ (label)
    if hasattr(field, "is_repeated"):  # protobuf 7 dropped `label`
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _print_text(status: pb.GetStatusResponse) -> None:
    print(f"serving:        {'yes' if status.serving else 'no'}")
    print(f"bundle:         {status.bundle_name or '-'} ({status.bundle_path or '-'})")
    cached = " (from cache)" if status.from_cache else ""
    print(f"revision:       {status.bundle_revision or '-'}{cached}")
    if status.bundle_source and status.bundle_source != status.bundle_path:
        print(f"source:         {status.bundle_source}")
    if status.HasField("last_fetch_at"):
        print(f"last fetch at:  {_time(status, 'last_fetch_at')}")
        print(f"last fetch:     {status.last_fetch_error or 'ok'}")
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
    print(f"started at:     {_time(status, 'started_at')}")
    print(f"pid:            {status.pid}")
    print(f"pdp version:    {status.version}")


def _print_protection(status: pb.GetStatusResponse) -> None:
    if not status.HasField("protection"):
        print("protection:     off")
        return
    found = status.protection
    print(f"protection:     {found.mode} (state: {found.state})")
    if found.fallbacks:
        print(f"state failures: {found.fallbacks} (last: {found.last_error or '-'})")
    if not found.penalties:
        print("active blocks:  none")
    for penalty in found.penalties:
        print(
            f"  {penalty.action:<8} {penalty.subject}  by {penalty.detector} until "
            f"{penalty.until.ToJsonString()} ({penalty.status})"
        )


def _time(status: pb.GetStatusResponse, name: str) -> str:
    if not status.HasField(name):
        return "-"
    stamp: timestamp_pb2.Timestamp = getattr(status, name)
    return stamp.ToJsonString()
