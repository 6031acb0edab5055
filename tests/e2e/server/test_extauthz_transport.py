"""What Envoy asserts (source.principal, jwt_authn metadata) counts only over a trusted channel."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.gateway import CHECKOUT, bundle_with, check_request, ext_authz, metadata_of
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import InProcessServer, ServerProcess

RESERVE = ("POST", "/internal/orders/o-1001/reserve")
JWT_AUTHN = "envoy.filters.http.jwt_authn"
PAYLOAD = {JWT_AUTHN: {"jwt_payload": {"iss": "https://auth.shop.example/", "sub": "42"}}}


def jwt_authn_bundle(tmp_path: Path) -> Path:
    text = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
    text = text.replace("  # Workloads:", "  jwt_authn: {}\n\n  # Workloads:", 1)
    return bundle_with(tmp_path / "bundle", text)


def test_plaintext_tcp_ignores_the_peer_and_warns_at_start(http_server: ServerProcess) -> None:
    """The worker's shared `pdp serve` over the example bundle (tests/conftest.py): plaintext
    gRPC on TCP; its HTTP listener is on loopback, which is not warned about."""
    server = http_server
    assert server.address is not None
    with ext_authz(server.address) as stub:
        response = stub.Check(check_request(*RESERVE, peer=CHECKOUT), timeout=10)
    warning = [json.loads(line) for line in server.stderr_lines if "untrusted_transport" in line]
    assert response.status.code == 16
    assert metadata_of(response)["principal"] == 'Anonymous::"anonymous"'
    assert len(warning) == 1 and warning[0]["level"] == "warning"
    assert "ignored unless the call arrives over mTLS or a unix socket" in warning[0]["message"]


def test_trust_plaintext_peer_flag_trusts_the_peer_and_says_so() -> None:
    with ServerProcess(EXAMPLE_BUNDLE, "--trust-plaintext-peer") as server:
        assert server.address is not None
        with ext_authz(server.address) as stub:
            response = stub.Check(check_request(*RESERVE, peer=CHECKOUT), timeout=10)
        stderr = server.stderr
    assert response.status.code == 0
    assert metadata_of(response)["principal"] == f'Service::"{CHECKOUT}"'
    assert "trusted from ANY caller" in stderr


def test_jwt_authn_metadata_counts_over_a_unix_socket_only(tmp_path: Path) -> None:
    root = jwt_authn_bundle(tmp_path)
    request = check_request("GET", "/api/users/42/orders", metadata=PAYLOAD)
    with ServerProcess(root, listen=f"unix:{tmp_path}/pdp.sock") as server:
        assert server.address is not None
        with ext_authz(server.address) as stub:
            trusted = stub.Check(request, timeout=10)
        assert "untrusted_transport" not in server.stderr
    assert trusted.status.code == 0
    assert metadata_of(trusted)["identity"] == "jwt"
    with ServerProcess(root) as server:
        assert server.address is not None
        with ext_authz(server.address) as stub:
            untrusted = stub.Check(request, timeout=10)
        assert "jwt_authn" in server.stderr
    assert untrusted.status.code == 16
    assert metadata_of(untrusted)["principal"] == 'Anonymous::"anonymous"'


def test_without_a_bundle_every_check_is_a_deny_with_a_status() -> None:
    with InProcessServer() as server, ext_authz(server.address) as stub:
        response = stub.Check(check_request("GET", "/api/orders/o-1001"), timeout=10)
    assert response.status.code == 7
    assert response.denied_response.status.code == 503
    body = json.loads(response.denied_response.body)
    assert body["error"] == "unavailable" and body["decision_id"]
    assert metadata_of(response)["reason"] == "no_bundle"
