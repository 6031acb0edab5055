"""TLS and mTLS on the listener with real certificates, rotation in place, Unix socket mode."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from grpc_health.v1 import health_pb2

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.bundles import run_pdp
from tests.support.certs import Issued, Pki, leaf, make_pki, tls_flags
from tests.support.cli import run_cli, serve_usage_error
from tests.support.gateway import CHECKOUT, check_request, metadata_of
from tests.support.hardening import TIMEOUT, allowed_request, guarded_bundle, health, log_events
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("listener")

SERVING = health_pb2.HealthCheckResponse.SERVING
RESERVE = ("POST", "/internal/orders/o-1001/reserve")  # the checkout workload may call it


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_server(pki: Pki) -> Iterator[ServerProcess]:
    with ServerProcess(EXAMPLE_BUNDLE, *tls_flags(pki), "--decision-log", "off") as server:
        yield server


def call_fails(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """The code a health check over these credentials fails with (the test fails if it works)."""
    try:
        health(address, credentials)
    except grpc.RpcError as exc:
        return exc.code()
    raise AssertionError("the call was answered")


def test_mtls_refuses_every_client_without_a_certificate_of_the_ca(
    mtls_server: ServerProcess, pki: Pki
) -> None:
    address = mtls_server.address
    assert address is not None
    assert call_fails(address, None) == grpc.StatusCode.UNAVAILABLE  # plaintext
    no_certificate = grpc.ssl_channel_credentials(pki.ca.cert)
    assert call_fails(address, no_certificate) == grpc.StatusCode.UNAVAILABLE
    other_ca = pki.client_credentials(pki.intruder)
    assert call_fails(address, other_ca) == grpc.StatusCode.UNAVAILABLE
    assert health(address, pki.client_credentials()) == SERVING


def test_over_mtls_the_peer_envoy_names_is_trusted(mtls_server: ServerProcess, pki: Pki) -> None:
    address = mtls_server.address
    assert address is not None
    with grpc.secure_channel(address, pki.client_credentials()) as channel:
        response = ext_grpc.AuthorizationStub(channel).Check(
            check_request(*RESERVE, peer=CHECKOUT), timeout=TIMEOUT
        )
    assert response.status.code == 0, metadata_of(response)
    assert metadata_of(response)["principal"] == f'Service::"{CHECKOUT}"'
    # mTLS makes the transport trusted: no start-up warning about plaintext assertions.
    assert not log_events(mtls_server, "untrusted_transport")


def test_pdp_status_over_mtls(mtls_server: ServerProcess, pki: Pki) -> None:
    """`pdp status` (in this process: run_cli) with a client certificate, and without."""
    address = mtls_server.address
    assert address is not None
    client_cert, client_key = pki.files("client")
    mtls = ("--tls-ca", str(pki.ca_file), "--tls-cert", str(client_cert))
    mtls += ("--tls-key", str(client_key))
    shown = pdp_status(address, *mtls)
    assert shown.returncode == 0, shown.stderr
    assert "serving:        yes" in shown.stdout
    # The server checks the client certificate, and the client the server's.
    assert pdp_status(address, "--tls-ca", str(pki.ca_file)).returncode == 1
    assert pdp_status(address).returncode == 1  # plaintext
    wrong_name = pdp_status(address, *mtls, "--tls-server-name", "other.example")
    assert wrong_name.returncode == 1
    assert wrong_name.stderr.startswith(f"error: {address}: UNAVAILABLE: ")


def pdp_status(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pdp status` in this process (its process: tests/e2e/server/test_status.py)."""
    return run_cli("status", "--address", address, "--timeout", "5", *args)


def test_tls_without_client_certificates_does_not_trust_the_peer(pki: Pki, tmp_path: Path) -> None:
    flags = tls_flags(pki, client_ca=False)
    with ServerProcess(EXAMPLE_BUNDLE, *flags, "--decision-log", "off") as server:
        assert server.address is not None
        # A client that presents a certificate anyway is not asked for one, so not verified.
        with grpc.secure_channel(server.address, pki.client_credentials()) as channel:
            response = ext_grpc.AuthorizationStub(channel).Check(
                check_request(*RESERVE, peer=CHECKOUT), timeout=TIMEOUT
            )
        warnings = log_events(server, "untrusted_transport")
        # `pdp status` trusting the CA, without a certificate of its own.
        shown = pdp_status(server.address, "--tls-ca", str(pki.ca_file), "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["serving"] is True
    assert response.status.code == 16  # UNAUTHENTICATED: anonymous, the peer ignored
    assert metadata_of(response)["principal"] == 'Anonymous::"anonymous"'
    assert len(warnings) == 1


def served_certificate(address: str, pki: Pki) -> x509.Certificate:
    """The certificate the server presents to a brand-new TLS connection (verified by the CA)."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    cert, key = pki.files("client")
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def der(issued: Issued) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


def test_a_certificate_rotated_in_place_is_served_without_a_restart(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with ServerProcess(EXAMPLE_BUNDLE, *tls_flags(pki), "--decision-log", "off") as server:
        address = server.address
        assert address is not None
        pid = server.process.pid if server.process else None
        first = served_certificate(address, pki)
        assert first.public_bytes(serialization.Encoding.DER) == der(pki.server)
        with grpc.secure_channel(address, pki.client_credentials()) as old_channel:
            stub = pb_grpc.AuthorizerStub(old_channel)
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).serving

            # cert-manager rewrites the files in place; new connections get the new pair.
            rotated = leaf(pki.ca, "pdp-rotated", server=True)
            rotated.write(pki.folder, "server")
            wait_for(
                lambda: (
                    served_certificate(address, pki).public_bytes(serialization.Encoding.DER)
                    == der(rotated)
                ),
                what="the rotated certificate",
            )
            assert health(address, pki.client_credentials()) == SERVING
            # The connection made before the rotation was not dropped.
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).serving

            # A broken rotation (a key that does not match) keeps the last good pair.
            cert, key = pki.files()
            key.write_bytes(leaf(pki.ca, "stray", server=True).key)

            def failures() -> list[dict[str, object]]:
                served_certificate(address, pki)  # a handshake makes the server look
                return log_events(server, "tls_reload_failed")

            failed = wait_for(failures, what="the failed reload to be logged")
            assert failed[0]["level"] == "error"
            assert "does not match" in failed[0]["error"]
            served = served_certificate(address, pki)
            assert served.public_bytes(serialization.Encoding.DER) == der(rotated)
            assert health(address, pki.client_credentials()) == SERVING

            # Garbage in the certificate file: still the last good pair.
            cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
            served = served_certificate(address, pki)
            assert served.public_bytes(serialization.Encoding.DER) == der(rotated)

            # Fixed files are picked up.
            fixed = leaf(pki.ca, "pdp-fixed", server=True)
            fixed.write(pki.folder, "server")
            wait_for(
                lambda: (
                    served_certificate(address, pki).public_bytes(serialization.Encoding.DER)
                    == der(fixed)
                ),
                what="the fixed certificate",
            )
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT).serving
        assert server.process is not None and server.process.pid == pid
        assert server.process.poll() is None
        reloaded = [e["subject"] for e in log_events(server, "tls_reloaded")]
    assert reloaded == ["CN=pdp-rotated", "CN=pdp-fixed"]
    assert "PRIVATE KEY" not in server.stderr  # no key material in the logs


def test_bad_tls_files_stop_the_start_with_exit_1_and_name_the_file(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    cert, key = pki.files()
    stray_key = tmp_path / "stray.key"
    stray_key.write_bytes(leaf(pki.ca, "stray", server=True).key)
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("hello\n")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        pki.server.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    bundle = guarded_bundle(tmp_path / "bundle")
    cases = {
        "missing": (("--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(key)), "nope.crt"),
        "mismatched": (("--tls-cert", str(cert), "--tls-key", str(stray_key)), "does not match"),
        "not a certificate": (("--tls-cert", str(garbage), "--tls-key", str(key)), "garbage.crt"),
        "encrypted key": (("--tls-cert", str(cert), "--tls-key", str(encrypted)), "encrypted"),
        "bad client CA": (
            ("--tls-cert", str(cert), "--tls-key", str(key), "--client-ca", str(garbage)),
            "--client-ca",
        ),
    }
    for name, (flags, words) in cases.items():
        result = run_pdp("serve", str(bundle), "--listen", "127.0.0.1:0", *flags, timeout=30)
        assert result.returncode == 1, (name, result.stderr)
        assert words in result.stderr, (name, result.stderr)
        assert "secret" not in result.stderr and "PRIVATE KEY" not in result.stderr
    usage = run_pdp("serve", str(bundle), "--tls-key", str(key), timeout=30)
    assert usage.returncode == 2 and "--tls-cert" in usage.stderr


def test_unix_socket_is_owner_and_group_only_unless_configured(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle")
    old = os.umask(0)  # even with a permissive umask the socket is never world-writable
    try:
        with ServerProcess(bundle, listen=f"unix:{tmp_path}/a.sock") as default:
            mode = stat.S_IMODE(os.stat(tmp_path / "a.sock").st_mode)
            assert default.address is not None
            with grpc.insecure_channel(default.address) as channel:
                answer = pb_grpc.AuthorizerStub(channel).IsAuthorized(
                    allowed_request(), timeout=TIMEOUT
                )
        flags = ("--unix-socket-mode", "0600")
        with ServerProcess(bundle, *flags, listen=f"unix:{tmp_path}/b.sock"):
            configured = stat.S_IMODE(os.stat(tmp_path / "b.sock").st_mode)
    finally:
        os.umask(old)
    assert mode == 0o660
    assert configured == 0o600
    assert answer.decision == pb.DECISION_ALLOW


def test_unix_socket_mode_must_be_octal(tmp_path: Path) -> None:
    result = serve_usage_error(str(tmp_path), "--unix-socket-mode", "rw-rw----")
    assert result.returncode == 2
    assert "octal" in result.stderr
