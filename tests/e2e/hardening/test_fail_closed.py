"""An internal failure on the decision path is an error status or a deny, never an allow.

The fault is a real bundle made inconsistent (its policy ids cannot be resolved), served by
the real gRPC server in-process: every decision that has a determining policy then fails
inside the engine, after Cedar said "allow".
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc

from pdp.bundle.compiler import CompiledBundle, compile_bundle
from pdp.bundle.loader import read_bundle
from pdp.live.store import BundleStore
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.gateway import bearer, check_request, metadata_of, token
from tests.support.hardening import TIMEOUT, allowed_request, guarded_bundle
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import InProcessServer


def inconsistent(root: Path) -> CompiledBundle:
    """The compiled bundle with its internal policy id table emptied."""
    return dataclasses.replace(compile_bundle(read_bundle(str(root))), by_internal_id={})


def serve(bundle: CompiledBundle) -> InProcessServer:
    store = BundleStore()
    store.activate(bundle)
    return InProcessServer(store)


def test_an_internal_error_in_pdp_v1_is_internal_with_a_safe_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = inconsistent(guarded_bundle(tmp_path / "bundle"))
    secret = "s3cr3t-context-value"
    caplog.set_level(logging.ERROR, logger="pdp")
    with serve(bundle) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.AuthorizerStub(channel)
        request = allowed_request(context_json=json.dumps({"ok": True, "note": secret}))
        with pytest.raises(grpc.RpcError) as single:
            stub.IsAuthorized(request, timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as batch:
            stub.BatchIsAuthorized(pb.BatchIsAuthorizedRequest(requests=[request]), timeout=TIMEOUT)
        # A request with no determining policy still works: the server is not wedged.
        denied = stub.IsAuthorized(allowed_request(context_json="{}"), timeout=TIMEOUT)
    for caught in (single, batch):
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        details = caught.value.details() or ""
        assert details.startswith("internal error ") and details.endswith("; see the log")
        assert "KeyError" not in details and secret not in details
    assert denied.decision == pb.DECISION_DENY
    records = [r for r in caplog.records if getattr(r, "event", "") == "internal_error"]
    assert len(records) == 2
    assert records[0].error == "KeyError"  # type: ignore[attr-defined]
    assert records[0].error_id in (single.value.details() or "")  # type: ignore[attr-defined]
    assert secret not in caplog.text


def test_an_internal_error_in_check_is_a_deny() -> None:
    message = check_request("GET", "/api/users/42/orders", bearer(token("42")))
    good = compile_bundle(read_bundle(str(EXAMPLE_BUNDLE)))
    with serve(good) as server, grpc.insecure_channel(server.address) as channel:
        assert ext_grpc.AuthorizationStub(channel).Check(message, timeout=TIMEOUT).status.code == 0
    with serve(inconsistent(EXAMPLE_BUNDLE)) as server, grpc.insecure_channel(server.address) as ch:
        response = ext_grpc.AuthorizationStub(ch).Check(message, timeout=TIMEOUT)
    assert response.status.code == 7  # PERMISSION_DENIED where the bundle allows
    assert response.denied_response.status.code == 403
    assert metadata_of(response)["reason"] == "internal_error"
    assert json.loads(response.denied_response.body)["error"] == "forbidden"
