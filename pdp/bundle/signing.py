"""Bundle signatures: one JWS (PyJWT) over the SHA-256 of every file, in `.signatures.json`.

The JWS payload lists every file of the archive but the signature file itself, as OPA's
bundle signatures do: `{"files": [{"name", "algorithm": "SHA-256", "hash"}]}`. Verifying
refuses an algorithm outside ES256, EdDSA, RS256 and PS256, a key of the wrong type for the
algorithm, a file that is not covered, a covered file that is missing, and a changed file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pdp.bundle.archive import SIGNATURES, check_name
from pdp.errors import ArchiveError, KeyFileError, Problem

ALGORITHMS = ("ES256", "EdDSA", "RS256", "PS256")
JWS_TYPE = "pdp-bundle+jws"
HASH_ALGORITHM = "SHA-256"
MIN_RSA_BITS = 2048
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_SIGNATURES_BYTES = 4 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key, the key id written into signatures, and the algorithm it signs with."""

    key: Any
    key_id: str
    algorithm: str


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A trusted public key; with a key id, it only checks signatures that name that id."""

    key: Any
    source: str
    key_id: str = ""

    @property
    def algorithms(self) -> tuple[str, ...]:
        return _algorithms_of(self.key)


@dataclass(frozen=True, slots=True)
class Verified:
    """An archive whose signature checked: its content files, and who signed it."""

    files: dict[str, bytes]
    key_id: str
    algorithm: str


def load_signing_key(path: str, key_id: str, algorithm: str = "") -> SigningKey:
    """The PEM private key at `path`; the algorithm follows from its type (RSA: RS256 unless
    `algorithm` says PS256). Raises KeyFileError naming the file."""
    check_key_id(key_id)
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    usable = _algorithms_of(key.public_key(), path)
    chosen = algorithm or usable[0]
    if chosen not in usable:
        raise KeyFileError(
            f"{path}: a {_key_kind(key.public_key())} key signs with {' or '.join(usable)}, "
            f"not {chosen}"
        )
    return SigningKey(key, key_id, chosen)


def load_verification_key(spec: str) -> VerificationKey:
    """`PATH` or `KEY_ID=PATH`: a PEM public key. Raises KeyFileError naming the file."""
    key_id, path = "", spec
    head, sep, tail = spec.partition("=")
    if sep and head and "/" not in head and not os.path.exists(spec):
        key_id, path = head, tail
        check_key_id(key_id)
    try:
        key = serialization.load_pem_public_key(_read_key_file(path))
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc})") from None
    _algorithms_of(key, path)
    return VerificationKey(key, path, key_id)


def check_key_id(key_id: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise KeyFileError(f"key id {key_id!r}: 1 to 128 characters of letters, digits and ._:@+-")


def sign_files(files: Mapping[str, bytes], key: SigningKey) -> bytes:
    """The `.signatures.json` content for `files` (the signature file itself excluded)."""
    payload = json.dumps({"files": _digests(files)}, sort_keys=True, separators=(",", ":")).encode()
    token = jwt.api_jws.PyJWS().encode(
        payload, key.key, algorithm=key.algorithm, headers={"kid": key.key_id, "typ": JWS_TYPE}
    )
    return json.dumps({"signatures": [token]}, indent=2).encode() + b"\n"


def verify_files(files: Mapping[str, bytes], keys: Sequence[VerificationKey]) -> Verified:
    """Check `.signatures.json` in `files` against `keys`; the content files on success.

    Raises ArchiveError with every problem: the signature file missing or malformed, a
    signature no trusted key verifies, and each file not covered, missing or changed.
    """
    if not keys:
        raise ArchiveError.at(SIGNATURES, "no verification key to check the signature with")
    raw = files.get(SIGNATURES)
    if raw is None:
        raise ArchiveError.at(SIGNATURES, "archive is not signed (no .signatures.json)")
    token = _the_signature(raw)
    header = _header(token)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise ArchiveError.at(
            SIGNATURES,
            f"signature algorithm {algorithm!r} is not allowed (allowed: {', '.join(ALGORITHMS)})",
        )
    if header.get("typ") != JWS_TYPE:
        raise ArchiveError.at(SIGNATURES, f"signature typ must be {JWS_TYPE!r}")
    key_id = header.get("kid", "")
    if not isinstance(key_id, str):
        raise ArchiveError.at(SIGNATURES, "signature kid must be a string")
    payload = _verified_payload(token, str(algorithm), key_id, keys)
    covered = _covered(payload)
    content = {name: data for name, data in files.items() if name != SIGNATURES}
    problems = []
    for name in sorted(content.keys() - covered.keys()):
        problems.append(Problem(name, "is not covered by the signature"))
    for name in sorted(covered.keys() - content.keys()):
        problems.append(Problem(name, "is covered by the signature but missing from the archive"))
    for name in sorted(covered.keys() & content.keys()):
        actual = hashlib.sha256(content[name]).hexdigest()
        if not hmac.compare_digest(actual, covered[name]):
            problems.append(
                Problem(name, "does not match its signed SHA-256 (changed after signing)")
            )
    if problems:
        raise ArchiveError(problems)
    return Verified(content, key_id, str(algorithm))


def _digests(files: Mapping[str, bytes]) -> list[dict[str, str]]:
    return [
        {"name": name, "algorithm": HASH_ALGORITHM, "hash": hashlib.sha256(files[name]).hexdigest()}
        for name in sorted(files)
        if name != SIGNATURES
    ]


def _the_signature(raw: bytes) -> str:
    if len(raw) > MAX_SIGNATURES_BYTES:
        raise ArchiveError.at(SIGNATURES, f"is larger than {MAX_SIGNATURES_BYTES} bytes")
    try:
        document = json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise ArchiveError.at(SIGNATURES, f"is not valid JSON: {exc}") from None
    signatures = document.get("signatures") if isinstance(document, dict) else None
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise ArchiveError.at(SIGNATURES, 'must be {"signatures": [one JWS]}')
    if not isinstance(signatures[0], str):
        raise ArchiveError.at(SIGNATURES, "signatures[0] must be a compact JWS string")
    return signatures[0]


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.api_jws.PyJWS().get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise ArchiveError.at(SIGNATURES, f"signatures[0] is not a JWS: {exc}") from None
    return dict(header)


def _verified_payload(
    token: str, algorithm: str, key_id: str, keys: Sequence[VerificationKey]
) -> bytes:
    candidates = [k for k in keys if k.key_id in ("", key_id) and algorithm in k.algorithms]
    if not candidates:
        named = f" with key id {key_id!r}" if key_id else ""
        raise ArchiveError.at(
            SIGNATURES, f"signed with {algorithm}{named}: no trusted verification key matches"
        )
    for candidate in candidates:
        try:
            found = jwt.api_jws.PyJWS().decode_complete(
                token, key=candidate.key, algorithms=[algorithm]
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise ArchiveError.at(SIGNATURES, f"signature is invalid: {exc}") from None
        return bytes(found["payload"])
    raise ArchiveError.at(
        SIGNATURES, "signature does not verify with any trusted key (wrong key or tampered)"
    )


def _covered(payload: bytes) -> dict[str, str]:
    try:
        document = json.loads(payload, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise ArchiveError.at(SIGNATURES, f"signed payload is not valid JSON: {exc}") from None
    entries = document.get("files") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ArchiveError.at(SIGNATURES, "signed payload has no files list")
    covered: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ArchiveError.at(SIGNATURES, "a signed files entry is not an object")
        name, digest = entry.get("name"), entry.get("hash")
        if entry.get("algorithm") != HASH_ALGORITHM:
            raise ArchiveError.at(SIGNATURES, f"signed file {name!r}: algorithm must be SHA-256")
        if not isinstance(name, str) or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ArchiveError.at(SIGNATURES, "a signed files entry needs a name and a hex hash")
        check_name(name)
        if name in covered or name == SIGNATURES:
            raise ArchiveError.at(SIGNATURES, f"signed file {name!r} is listed twice")
        covered[name] = digest
    return covered


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in an object")
    return result


def _algorithms_of(key: Any, path: str = "key") -> tuple[str, ...]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return ("ES256",)
        raise KeyFileError(f"{path}: EC keys must be on P-256 (ES256), not {key.curve.name}")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyFileError(f"{path}: RSA keys need at least {MIN_RSA_BITS} bits")
        return ("RS256", "PS256")
    raise KeyFileError(
        f"{path}: unsupported key type; use EC P-256 (ES256), Ed25519 (EdDSA) or RSA"
    )


def _key_kind(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC P-256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return "RSA"


def _read_key_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: larger than {MAX_KEY_FILE_BYTES} bytes; not a key file")
    return data
