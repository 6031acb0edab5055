"""Request builders and call helpers for the gRPC server tests; every call has a deadline."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from pdp.v1 import authorizer_pb2 as pb

TIMEOUT = 10.0
ALLOW = pb.DECISION_ALLOW
DENY = pb.DECISION_DENY


def uid(text: str) -> pb.EntityUid:
    """`Type::id` (no quotes) as an EntityUid."""
    entity_type, _, entity_id = text.rpartition("::")
    return pb.EntityUid(type=entity_type, id=entity_id)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def entity(uid_text: str, attrs: dict[str, Any] | None = None, parents: tuple[str, ...] = ()):
    """A pdp.v1 Entity from plain values."""
    return pb.Entity(
        uid=uid(uid_text), attrs=struct(attrs or {}), parents=[uid(p) for p in parents]
    )


def request(
    principal: str = "User::alice",
    action: str = "Action::read",
    resource: str = "Doc::d1",
    **fields: Any,
) -> pb.IsAuthorizedRequest:
    """An IsAuthorizedRequest; `context` may be a dict (made a Struct), `*_json` a value or text."""
    message = pb.IsAuthorizedRequest(
        principal=uid(principal), action=uid(action), resource=uid(resource)
    )
    for name, value in fields.items():
        if name == "context" and isinstance(value, dict):
            message.context.CopyFrom(struct(value))
        elif name.endswith("_json") and not isinstance(value, str):
            setattr(message, name, json.dumps(value))
        elif name == "entities":
            message.entities.extend(value)
        else:
            setattr(message, name, value)
    return message


def rpc_error(call: Callable[..., Any], message: Any) -> grpc.RpcError:
    """The error `call(message)` fails with; fails the test when it answers instead."""
    try:
        answer = call(message, timeout=TIMEOUT)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"expected an error status, got an answer: {answer}")


def summary(response: pb.IsAuthorizedResponse) -> tuple[int, list[str], list[str], list[str]]:
    """Decision, determining policies, erroring policies and errors, for exact comparison."""
    return (
        response.decision,
        list(response.determining_policies),
        list(response.erroring_policies),
        list(response.errors),
    )
