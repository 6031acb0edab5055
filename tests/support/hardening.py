"""Shared pieces of the hardening tests: a bundle that allows one request, probes, channels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.server import ServerProcess

TIMEOUT = 10.0
# Hypothesis for live servers: no deadline (a call's time is the server's), no saved examples.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The only request this bundle can allow: alice reads d1 with `context.ok == true`. Anything
# else is denied or refused, so an ALLOW for any other request is a fail-open bug.
ALLOWED = (("User", "alice"), ("Action", "read"), ("Doc", "d1"))
GUARDED_POLICIES = """\
@id("only-alice-reads-d1")
permit (principal == User::"alice", action == Action::"read", resource == Doc::"d1")
when { context has ok && context.ok == true };

@id("flagged-denied")
forbid (principal, action, resource)
when { context has flagged && context.flagged == true };

@id("erroring-forbid")
forbid (principal, action == Action::"write", resource)
when { resource.owner.name == "x" };
"""
GUARDED_ENTITIES = [
    {"uid": {"type": "User", "id": "alice"}, "attrs": {"name": "Alice"}, "parents": []},
    {"uid": {"type": "Doc", "id": "d1"}, "attrs": {"owner": "alice"}, "parents": []},
]


def guarded_bundle(root: Path, revision: str = "guarded-1") -> Path:
    """A schema-less bundle whose only permit is ALLOWED (with context.ok)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "policies.cedar").write_text(GUARDED_POLICIES)
    (root / "entities.json").write_text(json.dumps(GUARDED_ENTITIES))
    (root / "manifest.yaml").write_text(f"name: guarded\nrevision: {revision}\n")
    return root


def allowed_request(**fields: Any) -> pb.IsAuthorizedRequest:
    """The one allowed request (context_json `{"ok": true}` unless `fields` say otherwise)."""
    (ptype, pid), (atype, aid), (rtype, rid) = ALLOWED
    message = pb.IsAuthorizedRequest(
        principal=pb.EntityUid(type=ptype, id=pid),
        action=pb.EntityUid(type=atype, id=aid),
        resource=pb.EntityUid(type=rtype, id=rid),
    )
    if "context" not in fields and "context_json" not in fields:
        message.context_json = '{"ok": true}'
    for name, value in fields.items():
        if hasattr(value, "CopyFrom"):
            getattr(message, name).CopyFrom(value)
        elif name == "entities":
            message.entities.extend(value)
        else:
            setattr(message, name, value)
    return message


def health(address: str, credentials: grpc.ChannelCredentials | None = None) -> int:
    """The overall health status (1 SERVING) over a fresh channel."""
    with _channel(address, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status


def status(address: str) -> pb.GetStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.AuthorizerStub(channel).GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)


def _channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address)
    # The server certificate names 127.0.0.1 and localhost; the channel checks it.
    return grpc.secure_channel(address, credentials)


def assert_alive_and_serving(server: ServerProcess) -> None:
    """The process is still running and reports SERVING."""
    assert server.process is not None and server.process.poll() is None, server.stderr[-2000:]
    assert server.address is not None
    assert health(server.address) == health_pb2.HealthCheckResponse.SERVING


def log_events(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    """The JSON stderr lines of `server` with this `event`."""
    found = []
    for line in list(server.stderr_lines):
        if f'"{event}"' in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
