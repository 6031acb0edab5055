"""Test helpers for the gateway: real keys and JWTs, Envoy CheckRequests, a loopback JWKS server."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from google.protobuf import json_format, struct_pb2

from tests.support.paths import EXAMPLE_BUNDLE, REPO
from tests.support.server import ServerProcess

ORDERS_KEY = (REPO / "tests" / "fixtures" / "keys" / "orders-es256.pem").read_text()
ISSUER = "https://auth.shop.example/"
AUDIENCE = "orders-api"
KID = "orders-2026-01"
REPORTING_KEY = "pdp-example-reporting-key"  # its sha256 is in policies/routes.yaml
CHECKOUT = "spiffe://cluster.local/ns/shop/sa/checkout"
TIMEOUT = 10.0


def token(
    sub: str = "42",
    key: Any = ORDERS_KEY,
    algorithm: str = "ES256",
    kid: str | None = KID,
    headers: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A JWT signed with a real key; claims default to a valid token for the example bundle."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        "jti": f"jti-{sub}-{now}",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    extra = dict(headers or {})
    if kid is not None:
        extra["kid"] = kid
    return jwt.encode(body, key, algorithm=algorithm, headers=extra)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    """The public JWK of a cryptography private key."""
    public = private_key.public_key()
    if isinstance(private_key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    data.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return data


def public_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_request(
    method: str = "GET",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    header_map: list[tuple[str, str]] | None = None,
    peer: str = "",
    source_ip: str = "10.1.2.3",
    context_extensions: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    request_id: str = "req-1",
) -> pb.CheckRequest:
    """A CheckRequest as Envoy's HTTP ext_authz filter builds it (query inside `path`)."""
    http = ac.AttributeContext.HttpRequest(
        id=request_id,
        method=method,
        path=path,
        host="shop.example",
        scheme="https",
        protocol="HTTP/1.1",
    )
    if header_map is not None:
        http.header_map.headers.extend(
            base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in header_map
        )
    else:
        http.headers.update({":method": method, ":path": path, **(headers or {})})
    source = ac.AttributeContext.Peer(
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=source_ip, port_value=51234)
        ),
        principal=peer,
    )
    attributes = ac.AttributeContext(
        source=source,
        destination=ac.AttributeContext.Peer(principal="spiffe://cluster.local/ns/shop/sa/orders"),
        request=ac.AttributeContext.Request(http=http),
        context_extensions=dict(context_extensions or {}),
    )
    for namespace, value in (metadata or {}).items():
        struct = struct_pb2.Struct()
        json_format.ParseDict(value, struct)
        attributes.metadata_context.filter_metadata[namespace].CopyFrom(struct)
    return pb.CheckRequest(attributes=attributes)


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


@contextmanager
def ext_authz(address: str) -> Iterator[pb_grpc.AuthorizationStub]:
    """A stub for the Check service at `address` (HOST:PORT or unix:/path)."""
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield pb_grpc.AuthorizationStub(channel)


def metadata_of(response: pb.CheckResponse) -> dict[str, Any]:
    return json_format.MessageToDict(response.dynamic_metadata)


def headers_of(options: Any) -> dict[str, str]:
    return {o.header.key: o.header.value for o in options}


def log_entry(server: ServerProcess, decision_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The decision log line (`pdp serve` writes them to stdout) of `decision_id`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.stdout_lines):
            if decision_id in line and line.startswith("{"):
                return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no decision log entry for {decision_id}")


def bundle_with(target: Path, routes: str | None = None, files: Mapping[str, str] = {}) -> Path:
    """A copy of the example bundle at `target`, with its routes.yaml and files replaced."""
    shutil.copytree(EXAMPLE_BUNDLE, target, ignore=shutil.ignore_patterns(".*", "tests"))
    if routes is not None:
        (target / "routes.yaml").write_text(routes)
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving key sets by path, counting every request."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                    document = owner.documents.get(self.path)
                body = json.dumps(document).encode() if document is not None else b"{}"
                self.send_response(200 if document is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def serve(self, path: str, keys: list[dict[str, Any]]) -> str:
        with self._lock:
            self.documents[path] = {"keys": keys}
        return self.url(path)

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits.get(path, 0)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
