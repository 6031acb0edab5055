"""Development credentials: a fresh ES256 key, a bundle copy that trusts only it, and tokens.

For trying the gateway (`Check`) path on a laptop or in tests, never for production: the key
is generated on the machine that uses it, kept owner-only, and nothing here is committed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from pdp import yamlsrc
from pdp.errors import DevkitError, YamlError

DEV_KID = "dev-es256"
KEY_FILE = "dev-es256.pem"
BUNDLE_DIR = "bundle"
MARKER = ".pdp-dev-bundle"  # a dot file: never bundle content; marks a copy we may replace
MAX_KEY_BYTES = 64 * 1024
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class DevBundle:
    """What `make_dev_bundle` made: the key file, the bundle copy and the JWKS files replaced."""

    key_path: Path
    key_created: bool
    bundle: Path
    jwks_files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Issuer:
    """The routes.yaml issuer a key signs for: `iss`, the first audience, the key's `kid`."""

    issuer: str
    audience: str
    kid: str


def make_dev_bundle(source: Path, out: Path) -> DevBundle:
    """`out/dev-es256.pem` (kept when present) and `out/bundle`: a copy of `source` whose
    ES256 issuers' JWKS files hold only that key's public half."""
    source, out = source.resolve(), out.resolve()
    if not (source / "routes.yaml").is_file():
        raise DevkitError(f"{source}: no routes.yaml, so no JWT issuer to give a development key")
    target = out / BUNDLE_DIR
    if target == source or source in target.parents:
        raise DevkitError(f"{target}: inside the bundle {source} it would copy")
    if target.exists() and not (target / MARKER).is_file():
        raise DevkitError(f"{target} exists and was not made by pdp dev-bundle; remove it first")
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / KEY_FILE
    created = not key_path.exists()
    key = _create_key(key_path) if created else load_key(key_path)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise DevkitError(f"{key_path}: not an EC P-256 key (ES256); remove it to get a new one")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*", "*~", "*.swp"))
    (target / MARKER).write_text("made by pdp dev-bundle; replaced by the next run\n")
    return DevBundle(key_path, created, target, trust_only(target, key, DEV_KID))


def jwks_issuers(bundle: Path) -> list[dict[str, Any]]:
    """The routes.yaml JWT issuers that allow ES256 and read their keys from a bundle file."""
    path = bundle / "routes.yaml"
    try:
        config = yamlsrc.load(str(path), path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise DevkitError(f"{path}: cannot read: {exc}") from None
    except YamlError as exc:
        raise DevkitError(str(exc)) from None
    issuers = (((config.get("identity") or {}).get("jwt") or {}).get("issuers")) or []
    return [
        issuer
        for issuer in issuers
        if isinstance(issuer, dict)
        and "ES256" in (issuer.get("algorithms") or [])
        and isinstance((issuer.get("jwks") or {}).get("file"), str)
    ]


def trust_only(bundle: Path, key: ec.EllipticCurvePrivateKey, kid: str) -> tuple[str, ...]:
    """Replace the JWKS file of every ES256 issuer in `bundle` by `key`'s public JWK alone."""
    issuers = jwks_issuers(bundle)
    if not issuers:
        raise DevkitError(f"{bundle / 'routes.yaml'}: no ES256 issuer with a jwks file")
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    replaced = []
    for issuer in issuers:
        path = _inside(bundle, issuer["jwks"]["file"])
        path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n", encoding="utf-8")
        replaced.append(issuer["jwks"]["file"])
    return tuple(dict.fromkeys(replaced))


def issuer_for(bundle: Path, key: PrivateKey) -> Issuer:
    """The issuer of `bundle`'s routes.yaml whose JWKS file holds `key`'s public half."""
    public = _public_numbers(key)
    for issuer in jwks_issuers(bundle):
        path = _inside(bundle, issuer["jwks"]["file"])
        try:
            keys = json.loads(path.read_text(encoding="utf-8")).get("keys") or []
        except (OSError, ValueError, AttributeError):
            continue
        for jwk in keys:
            if isinstance(jwk, dict) and _jwk_numbers(jwk) == public and jwk.get("kid"):
                audiences = issuer.get("audiences") or []
                if not audiences:
                    raise DevkitError(f"issuer {issuer.get('issuer')!r} lists no audiences")
                return Issuer(str(issuer["issuer"]), str(audiences[0]), str(jwk["kid"]))
    raise DevkitError(
        f"the key's public half is in no JWKS file of {bundle / 'routes.yaml'}'s ES256 issuers"
    )


def sign(key: PrivateKey, kid: str, claims: dict[str, Any]) -> str:
    """A JWT over `claims`, signed by PyJWT with the algorithm `key`'s type calls for."""
    return jwt.encode(claims, key, algorithm=algorithm_for(key), headers={"kid": kid})


def claims_for(issuer: str, audience: str, subject: str, ttl_seconds: int) -> dict[str, Any]:
    """Registered claims of a token valid from now for `ttl_seconds`."""
    now = int(time.time())
    return {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl_seconds}


def algorithm_for(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_ALGORITHMS:
            raise DevkitError(f"EC curve {key.curve.name} has no JWS algorithm")
        return _EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise DevkitError(f"a {type(key).__name__} cannot sign a JWT here")


def load_key(path: Path) -> PrivateKey:
    """An unencrypted PEM private key; DevkitError naming the file (never quoting it)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise DevkitError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_BYTES:
        raise DevkitError(f"{path}: larger than {MAX_KEY_BYTES} bytes, not a PEM key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DevkitError(f"{path}: the key is encrypted; pdp needs it unencrypted") from None
    except ValueError:
        raise DevkitError(f"{path}: not a PEM private key") from None
    if not isinstance(key, PrivateKey):
        raise DevkitError(f"{path}: a {type(key).__name__} cannot sign a JWT here")
    return key


def _create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A new P-256 key written owner-only (created 0600, never readable by others first)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return key


def _inside(bundle: Path, relative: str) -> Path:
    """`bundle/relative`, refused when it would leave the bundle (`../..`, an absolute path)."""
    path = (bundle / relative).resolve()
    if bundle.resolve() not in path.parents:
        raise DevkitError(f"jwks file {relative!r} is outside the bundle {bundle}")
    return path


def _public_numbers(key: PrivateKey) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _jwk_numbers(json.loads(ECAlgorithm.to_jwk(public)))
    if isinstance(public, rsa.RSAPublicKey):
        return _jwk_numbers(json.loads(RSAAlgorithm.to_jwk(public)))
    return _jwk_numbers(json.loads(OKPAlgorithm.to_jwk(public)))


def _jwk_numbers(jwk: dict[str, Any]) -> dict[str, Any]:
    """The public parameters of a JWK, whatever else (kid, alg, use) it carries."""
    names = {"EC": ("crv", "x", "y"), "RSA": ("n", "e"), "OKP": ("crv", "x")}
    return {name: jwk.get(name) for name in ("kty", *names.get(str(jwk.get("kty")), ()))}
