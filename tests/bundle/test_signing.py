"""Bundle signatures: real keys of every allowed type; every forgery refused, the file named."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import jwt
import pytest

from pdp.bundle.archive import SIGNATURES, read_archive
from pdp.bundle.package import open_archive, sign_archive, verify_archive
from pdp.bundle.signing import load_signing_key, load_verification_key
from pdp.errors import ArchiveError, KeyFileError
from tests.support.archives import (
    example_archive,
    example_files,
    rebuild,
    signing_key,
    write_key,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    for kind in ("ec", "ed25519", "rsa", "ec384", "rsa1024"):
        write_key(folder, kind)
    write_key(folder, "ec", name="other")
    return folder


def public(keys: Path, name: str, key_id: str = "") -> list:
    spec = f"{keys / name}.pub.pem"
    return [load_verification_key(f"{key_id}={spec}" if key_id else spec)]


def private(keys: Path, name: str, key_id: str = "k1", algorithm: str = ""):
    return load_signing_key(str(keys / f"{name}.pem"), key_id, algorithm)


def problems(data: bytes, trusted: list) -> str:
    with pytest.raises(ArchiveError) as caught:
        verify_archive(data, trusted)
    return str(caught.value)


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("ec", "ES256"), ("ed25519", "EdDSA"), ("rsa", "RS256"), ("rsa", "PS256")],
)
def test_every_allowed_algorithm_signs_and_verifies(keys: Path, kind: str, algorithm: str) -> None:
    data = example_archive(private(keys, kind, "team-a", algorithm))
    files, key_id = verify_archive(data, public(keys, kind))
    assert key_id == "team-a"
    assert SIGNATURES not in files and "baseline.cedar" in files
    header = jwt.get_unverified_header(json.loads(read_archive(data)[SIGNATURES])["signatures"][0])
    assert header == {"alg": algorithm, "kid": "team-a", "typ": "pdp-bundle+jws"}


def test_deterministic_algorithms_give_deterministic_signed_archives(keys: Path) -> None:
    assert example_archive(private(keys, "ed25519")) == example_archive(private(keys, "ed25519"))


def test_an_unsigned_archive_is_refused(keys: Path) -> None:
    assert "not signed (no .signatures.json)" in problems(example_archive(), public(keys, "ec"))


def test_a_changed_file_is_named(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    files["baseline.cedar"] = files["baseline.cedar"].replace(b"forbid", b"permit")
    message = problems(rebuild(files), public(keys, "ec"))
    assert "baseline.cedar: does not match its signed SHA-256" in message


def test_an_added_file_is_named(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    files["backdoor.cedar"] = b"permit(principal, action, resource);"
    assert "backdoor.cedar: is not covered by the signature" in problems(
        rebuild(files), public(keys, "ec")
    )


def test_an_added_dot_file_is_named_too(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    files[".hidden"] = b"x"
    assert ".hidden: is not covered" in problems(rebuild(files), public(keys, "ec"))


def test_a_removed_file_is_named(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    del files["admin/functions.cedar"]  # dropping a forbid would widen access
    assert "admin/functions.cedar: is covered by the signature but missing" in problems(
        rebuild(files), public(keys, "ec")
    )


def test_the_wrong_key_is_refused(keys: Path) -> None:
    data = example_archive(private(keys, "ec"))
    assert "does not verify with any trusted key" in problems(data, public(keys, "other"))


def test_a_key_of_another_type_is_not_tried(keys: Path) -> None:
    data = example_archive(private(keys, "ec"))
    assert "no trusted verification key matches" in problems(data, public(keys, "rsa"))


def test_a_pinned_key_id_must_match(keys: Path) -> None:
    data = example_archive(private(keys, "ec", key_id="team-b"))
    assert "key id 'team-b'" in problems(data, public(keys, "ec", key_id="team-a"))
    assert verify_archive(data, public(keys, "ec", key_id="team-b"))[1] == "team-b"


def _with_token(files: dict[str, bytes], token: str) -> bytes:
    return rebuild({**files, SIGNATURES: json.dumps({"signatures": [token]}).encode()})


def _payload(files: dict[str, bytes]) -> bytes:
    token = json.loads(files[SIGNATURES])["signatures"][0]
    return base64.urlsafe_b64decode(token.split(".")[1] + "==")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_alg_none_is_refused(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"pdp-bundle+jws"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(_payload(files)).rstrip(b"=")
    token = f"{head.decode()}.{body.decode()}."
    assert "algorithm 'none' is not allowed" in problems(
        _with_token(files, token), public(keys, "ec")
    )


def test_hmac_with_the_public_key_as_secret_is_refused(keys: Path) -> None:
    files = example_files(private(keys, "rsa"))
    secret = (keys / "rsa.pub.pem").read_bytes()  # PyJWT will not do this: forge by hand
    head = _b64(b'{"alg":"HS256","typ":"pdp-bundle+jws"}') + "." + _b64(_payload(files))
    mac = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    token = f"{head}.{_b64(mac)}"
    assert "algorithm 'HS256' is not allowed" in problems(
        _with_token(files, token), public(keys, "rsa")
    )


def test_a_jwt_signed_with_the_same_key_is_not_a_bundle_signature(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    key = private(keys, "ec")
    token = jwt.encode({"sub": "42"}, key.key, algorithm="ES256")  # typ JWT
    assert "typ must be" in problems(_with_token(files, token), public(keys, "ec"))


def test_a_signed_payload_that_lists_a_file_twice_is_refused(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    entry = {"name": "p.cedar", "algorithm": "SHA-256", "hash": "0" * 64}
    payload = json.dumps({"files": [entry, entry]}).encode()
    key = private(keys, "ec")
    token = jwt.api_jws.PyJWS().encode(
        payload, key.key, algorithm="ES256", headers={"typ": "pdp-bundle+jws"}
    )
    assert "listed twice" in problems(_with_token(files, token), public(keys, "ec"))


def test_a_signed_payload_with_a_climbing_name_is_refused(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    entry = {"name": "../x", "algorithm": "SHA-256", "hash": "0" * 64}
    key = private(keys, "ec")
    token = jwt.api_jws.PyJWS().encode(
        json.dumps({"files": [entry]}).encode(),
        key.key,
        algorithm="ES256",
        headers={"typ": "pdp-bundle+jws"},
    )
    assert "climbs out" in problems(_with_token(files, token), public(keys, "ec"))


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"signatures": []}', b'{"signatures": ["a", "b"]}', b'{"signatures": [1]}'],
)
def test_malformed_signature_files_are_refused(keys: Path, content: bytes) -> None:
    files = {**example_files(private(keys, "ec")), SIGNATURES: content}
    assert ".signatures.json" in problems(rebuild(files), public(keys, "ec"))


def test_duplicate_keys_in_the_signature_file_are_refused(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    good = files[SIGNATURES].decode()
    twice = good.replace('"signatures"', '"signatures": [], "signatures"', 1)
    assert "appears twice" in problems(
        rebuild({**files, SIGNATURES: twice.encode()}), public(keys, "ec")
    )


def test_signing_again_replaces_the_signature(keys: Path) -> None:
    data = sign_archive(example_archive(private(keys, "ec")), private(keys, "other", "k2"))
    assert verify_archive(data, public(keys, "other"))[1] == "k2"
    assert "does not verify" in problems(data, public(keys, "ec"))


def test_open_archive_verifies_before_it_extracts(keys: Path) -> None:
    files = example_files(private(keys, "ec"))
    files["backdoor.cedar"] = b"permit(principal, action, resource);"
    with pytest.raises(ArchiveError, match=r"backdoor\.cedar"):
        open_archive(rebuild(files), public(keys, "ec"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ec384", "must be on P-256"), ("rsa1024", "at least 2048 bits")],
)
def test_weak_or_unsupported_keys_are_refused(keys: Path, name: str, expected: str) -> None:
    with pytest.raises(KeyFileError, match=expected):
        load_verification_key(str(keys / f"{name}.pub.pem"))
    with pytest.raises(KeyFileError, match=expected):
        load_signing_key(str(keys / f"{name}.pem"), "k1")


def test_key_files_are_checked(keys: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_verification_key(str(keys / "ec.pem"))  # a private key is no verification key
    with pytest.raises(KeyFileError, match="cannot read"):
        load_verification_key(str(tmp_path / "missing.pem"))
    with pytest.raises(KeyFileError, match="signs with ES256"):
        load_signing_key(str(keys / "ec.pem"), "k1", "PS256")
    with pytest.raises(KeyFileError, match="key id"):
        load_signing_key(str(keys / "ec.pem"), "bad id\n")
    assert signing_key(write_key(tmp_path, "ed25519")).algorithm == "EdDSA"
