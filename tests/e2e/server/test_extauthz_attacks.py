"""The JWT attack suite against a real server: every forged or broken token is a 401.

Two issuers: the example bundle's ES256 one (keys in a bundle file) and an RS256 one whose
key set is served by a real HTTP server on 127.0.0.1. An attacker's key set is served there
too, and the suite checks it is never fetched: pdp never follows `jku`/`x5u`/`jwk` headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc

from tests.support.gateway import (
    JwksServer,
    bearer,
    bundle_with,
    check_request,
    ec_key,
    ext_authz,
    headers_of,
    log_entry,
    metadata_of,
    public_jwk,
    public_pem,
    rsa_key,
    token,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("extauthz-attacks")

PARTNER = "https://partner-idp.test/"
RSA = rsa_key()
ATTACKER_EC = ec_key()
ATTACKER_RSA = rsa_key()
PATH = "/api/users/42/orders"


def routes(jwks_url: str) -> str:
    """The example routes.yaml plus a second issuer whose keys are fetched from `jwks_url`."""
    text = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
    partner = f"""\
      - issuer: {PARTNER}
        audiences: [orders-api]
        algorithms: [RS256]
        jwks:
          url: {jwks_url}
          min_refresh_seconds: 60
        principal:
          type: User
          allow_id_collisions: true
"""
    marker = "  # Workloads:"
    assert marker in text
    # Both issuers mint User ids from `sub` on purpose: each accepts the other's ids.
    ours = "          id_claim: sub\n"
    assert ours in text
    text = text.replace(ours, ours + "          allow_id_collisions: true\n", 1)
    return text.replace(marker, partner + "\n" + marker, 1)


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.serve("/idp/jwks", [public_jwk(RSA, "rsa-1", "RS256")])
        server.serve("/attacker/jwks", [public_jwk(ATTACKER_EC, "evil", "ES256")])
        yield server


@pytest.fixture(scope="module")
def server(jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("attacks")
    root = bundle_with(folder / "bundle", routes(jwks.url("/idp/jwks")))
    with ServerProcess(root, listen=f"unix:{folder}/pdp.sock") as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizationStub]:
    assert server.address is not None
    with ext_authz(server.address) as client:
        yield client


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": PARTNER, "aud": "orders-api", "sub": "42", "exp": now + 300, **extra}


def unsigned(alg: str) -> str:
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}."


def hs256_with_rsa_public_key() -> str:
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    body = b64(claims(sub="admin-ada"))
    signature = hmac.new(public_pem(RSA), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def tampered() -> str:
    header, _, signature = partner().split(".")
    return f"{header}.{b64(claims(sub='admin-ada'))}.{signature}"


def partner(**kwargs: Any) -> str:
    options: dict[str, Any] = {"key": RSA, "algorithm": "RS256", "kid": "rsa-1", "iss": PARTNER}
    options.update(kwargs)
    return token("42", **options)


ATTACKS: dict[str, tuple[Any, str]] = {  # name -> (make(attacker_jwks_url), reason)
    "alg none": (lambda url: unsigned("none"), "alg_none"),
    "alg None": (lambda url: unsigned("None"), "alg_none"),
    "alg empty": (lambda url: unsigned(""), "alg_none"),
    "HS256 with the RSA public key": (lambda url: hs256_with_rsa_public_key(), "alg_not_allowed"),
    "expired": (lambda url: partner(exp=int(time.time()) - 3600), "expired"),
    "not yet valid": (lambda url: partner(nbf=int(time.time()) + 3600), "not_yet_valid"),
    "wrong issuer": (lambda url: partner(iss="https://evil-idp.test/"), "unknown_issuer"),
    "wrong audience": (lambda url: partner(aud="billing-api"), "wrong_audience"),
    "unknown kid": (lambda url: partner(kid="rsa-404"), "unknown_kid"),
    "no kid": (lambda url: partner(kid=None), "unknown_kid"),
    "another key, right kid": (lambda url: partner(key=ATTACKER_RSA), "bad_signature"),
    "ES256 for an RS256 issuer": (
        lambda url: partner(key=ATTACKER_EC, algorithm="ES256"),
        "alg_not_allowed",
    ),
    "jku to the attacker's keys": (
        lambda url: partner(key=ATTACKER_EC, algorithm="ES256", kid="evil", headers={"jku": url}),
        "key_in_header",
    ),
    "x5u to the attacker's keys": (
        lambda url: partner(key=ATTACKER_RSA, headers={"x5u": url}),
        "key_in_header",
    ),
    "embedded jwk": (
        lambda url: partner(
            key=ATTACKER_RSA, headers={"jwk": public_jwk(ATTACKER_RSA, "x", "RS256")}
        ),
        "key_in_header",
    ),
    "tampered payload": (lambda url: tampered(), "bad_signature"),
    "malformed": (lambda url: "not-a-jwt", "malformed"),
    "two segments": (lambda url: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI0MiJ9", "malformed"),
    # Not even an RFC 6750 token: refused as a malformed header (`invalid_request`).
    "bad base64": (lambda url: "eyJhbGciOiJSUzI1NiJ9.!!!.sig", "malformed_authorization"),
    "huge": (lambda url: partner(pad="x" * 20000), "too_large"),
    "example issuer, forged key": (lambda url: token("42", key=ec_key()), "bad_signature"),
    "issued in the future": (lambda url: token("42", iat=int(time.time()) + 3600), "bad_iat"),
    "not valid before the future": (
        lambda url: token("42", nbf=int(time.time()) + 3600),
        "not_yet_valid",
    ),
    # Roles and scopes are refused whole, never cut: a dropped role could be a forbid's.
    "101 roles, the last one a forbid's": (
        lambda url: token("42", roles=[f"r{i}" for i in range(100)] + ["suspended"]),
        "bad_claim",
    ),
    "a role that is not a string": (lambda url: token("42", roles=["support", 7]), "bad_claim"),
    "roles as an object": (lambda url: token("42", roles={"admin": True}), "bad_claim"),
    "scope as a number": (lambda url: token("42", scope=5), "bad_claim"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_denied_401_with_a_reason(
    name: str,
    stub: pb_grpc.AuthorizationStub,
    server: ServerProcess,
    jwks: JwksServer,
) -> None:
    make, reason = ATTACKS[name]
    value = make(jwks.url("/attacker/jwks"))
    response = stub.Check(check_request("GET", PATH, bearer(value)), timeout=10)
    assert response.status.code == 16  # UNAUTHENTICATED
    denied = response.denied_response
    assert denied.status.code == 401
    error = "invalid_request" if reason == "malformed_authorization" else "invalid_token"
    assert headers_of(denied.headers) == {
        "content-type": "application/json",
        "www-authenticate": f'Bearer error="{error}"',
    }
    metadata = metadata_of(response)
    assert json.loads(denied.body) == {
        "error": "unauthenticated",
        "decision_id": metadata["decision_id"],
    }
    assert metadata["reason"] == reason
    entry = log_entry(server, metadata["decision_id"])
    assert entry["authn_failure"] == reason and entry["http_status"] == 401
    assert jwks.count("/attacker/jwks") == 0


def test_the_legitimate_tokens_of_both_issuers_pass(stub: pb_grpc.AuthorizationStub) -> None:
    for value in (partner(), token("42")):
        response = stub.Check(check_request("GET", PATH, bearer(value)), timeout=10)
        assert response.status.code == 0, metadata_of(response)


def test_tokens_never_reach_the_logs(server: ServerProcess) -> None:
    logs = server.stdout + server.stderr
    assert partner().split(".")[1] not in logs
    assert hs256_with_rsa_public_key().split(".")[2] not in logs


def test_attacker_key_sets_were_never_fetched(jwks: JwksServer) -> None:
    assert jwks.count("/attacker/jwks") == 0
    assert jwks.count("/idp/jwks") >= 1


def test_the_bundle_refuses_mixing_hmac_with_rsa(tmp_path: Path, jwks: JwksServer) -> None:
    text = routes(jwks.url("/idp/jwks")).replace("[RS256]", "[RS256, HS256]")
    root = bundle_with(tmp_path / "bundle", text)
    done = ServerProcess(root)
    with pytest.raises(RuntimeError, match="mixes HMAC"):
        done.start()
