"""The Envoy `Check` workload: a bundle copy whose JWKS we control, ES256 tokens, CheckRequests."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from bench import bundles
from pdp import devkit

METHOD = "/envoy.service.auth.v3.Authorization/Check"
KID = "bench-es256"


def available(bundle_dir: Path) -> str:
    """ "" when Check can be benchmarked on `bundle_dir`, else why not."""
    try:
        from envoy.service.auth.v3 import external_auth_pb2  # noqa: F401

        import pdp.server.extauthz  # noqa: F401
    except ImportError as exc:
        return f"no Check service in this tree ({exc.name})"
    if _jwt_issuer(bundle_dir) is None:
        return "the bundle's routes.yaml has no JWT issuer with a JWKS file"
    return ""


def _jwt_issuer(bundle_dir: Path) -> dict[str, Any] | None:
    if not (bundle_dir / "routes.yaml").is_file():
        return None
    issuers = devkit.jwks_issuers(bundle_dir)
    return issuers[0] if issuers else None


@dataclass(frozen=True, slots=True)
class Signer:
    """Our ES256 key, the issuer config it stands in for, and how to mint a token."""

    key: ec.EllipticCurvePrivateKey
    issuer: dict[str, Any]

    def token(self, sub: str, roles: tuple[str, ...], tenant: str, ttl: float = 3600) -> str:
        """A valid ES256 token for the issuer, with claims mapped as routes.yaml says."""
        principal = self.issuer.get("principal", {})
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer["issuer"],
            "aud": (self.issuer.get("audiences") or ["bench"])[0],
            principal.get("id_claim", "sub"): sub,
            "iat": now,
            "nbf": now - 5,
            "exp": now + int(ttl),
            self.issuer.get("scopes_claim", "scope"): "orders",
        }
        if principal.get("roles_claim"):
            claims[principal["roles_claim"]] = list(roles)
        for name, spec in (principal.get("attributes") or {}).items():
            claim = spec.get("claim") if isinstance(spec, dict) else spec
            claims[claim] = tenant if name == "tenant" else f"{sub}@{tenant}.example"
        return devkit.sign(self.key, KID, claims)


def prepare_bundle(example: Path, dst: Path) -> Signer:
    """Copy the example bundle to `dst` and replace its issuer's JWKS with our own key."""
    bundles.copy_bundle(example, dst)
    issuer = _jwt_issuer(dst)
    if issuer is None:
        raise RuntimeError("no ES256 issuer with a JWKS file in routes.yaml")
    key = ec.generate_private_key(ec.SECP256R1())
    devkit.trust_only(dst, key, KID)
    return Signer(key, issuer)


@dataclass(frozen=True, slots=True)
class CheckCall:
    """One gateway request: who (token subject) asks for which route."""

    sub: str
    method: str
    path: str
    token: str


def check_mix(signer: Signer, size: int = 1500, users: int = 400, seed: int = 3) -> list[CheckCall]:
    """Route requests by many token holders; each token is reused (a cache may hold it)."""
    rng = random.Random(seed)
    people = [
        (f"u{n}", bundles.TENANTS[n % 2], ("admin",) if n % 10 == 0 else ()) for n in range(users)
    ]
    people += [(u, t, r) for u, (t, r) in bundles.BUNDLE_USERS.items()]
    tokens = {sub: signer.token(sub, roles, tenant) for sub, tenant, roles in people}
    orders = sorted(bundles.BUNDLE_ORDERS)
    calls = []
    for _ in range(size):
        sub, _, _ = rng.choice(people)
        roll = rng.random()
        other = sub if rng.random() < 0.5 else rng.choice(people)[0]
        if roll < 0.5:
            method, path = "GET", f"/api/users/{other}/orders"
        elif roll < 0.7:
            method, path = "GET", f"/api/orders/{rng.choice(orders)}"
        elif roll < 0.85:
            method, path = "GET", f"/api/admin/users/{other}/orders"
        else:
            method, path = "POST", f"/api/orders/{rng.choice(orders)}/cancel"
        calls.append(CheckCall(sub, method, path, tokens[sub]))
    return calls


def check_request(call: CheckCall) -> bytes:
    """The serialized CheckRequest Envoy would send for `call`."""
    from envoy.service.auth.v3 import external_auth_pb2 as pb

    request = pb.CheckRequest()
    http = request.attributes.request.http
    http.method = call.method
    http.path = call.path
    http.host = "shop.example"
    http.scheme = "https"
    http.protocol = "HTTP/1.1"
    http.headers["authorization"] = f"Bearer {call.token}"
    http.headers["user-agent"] = "bench"
    socket = request.attributes.source.address.socket_address
    socket.address = "10.1.2.3"
    socket.port_value = 40000
    return request.SerializeToString()


def check_status(raw: bytes) -> int:
    """The status code inside a serialized CheckResponse (0 allow, 7 deny, 16 no identity)."""
    from envoy.service.auth.v3 import external_auth_pb2 as pb

    return pb.CheckResponse.FromString(raw).status.code
