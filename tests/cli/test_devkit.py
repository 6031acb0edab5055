"""`pdp dev-bundle` and `pdp token`: development keys and tokens, and what they refuse to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pdp.bundle import load_bundle
from tests.support.bundles import run_pdp
from tests.support.cli import run_cli
from tests.support.paths import EXAMPLE_BUNDLE


def dev_bundle(out: Path, source: Path = EXAMPLE_BUNDLE, run=run_cli):
    """`pdp dev-bundle` in this process (`run=run_pdp`: as a real subprocess)."""
    return run("dev-bundle", str(source), "--out", str(out))


def write_key(path: Path, key, password: bytes | None = None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def test_dev_bundle_makes_an_owner_only_key_and_a_copy_trusting_only_it(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    made = dev_bundle(out, run=run_pdp)  # as a real process once
    assert made.returncode == 0, made.stderr
    key_file = out / "dev-es256.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    (jwk,) = json.loads((out / "bundle" / "keys" / "orders.jwks.json").read_text())["keys"]
    assert (jwk["kid"], jwk["alg"], jwk["kty"], jwk["crv"]) == ("dev-es256", "ES256", "EC", "P-256")
    assert "d" not in jwk  # the public half only
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(jwt.utils.base64url_decode(jwk["x"]), "big"),
        int.from_bytes(jwt.utils.base64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    )
    assert public == key.public_key().public_numbers()
    copy = load_bundle(out / "bundle")  # the copy serves: same policies as the original
    assert {p.id for p in copy.policies} == {p.id for p in load_bundle(EXAMPLE_BUNDLE).policies}
    assert copy.warnings == ()
    assert f"key:    {key_file} (new, kid dev-es256)" in made.stdout
    assert "PRIVATE KEY" not in made.stdout + made.stderr


def test_a_second_run_keeps_the_key_and_refreshes_the_copy(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    assert dev_bundle(out).returncode == 0
    key = (out / "dev-es256.pem").read_bytes()
    (out / "bundle" / "stale.cedar").write_text("forbid (principal, action, resource);")
    again = dev_bundle(out)
    assert again.returncode == 0, again.stderr
    assert (out / "dev-es256.pem").read_bytes() == key
    assert "(kept, kid dev-es256)" in again.stdout
    assert not (out / "bundle" / "stale.cedar").exists()


def test_dev_bundle_never_replaces_a_folder_it_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    (out / "bundle").mkdir(parents=True)
    (out / "bundle" / "mine.txt").write_text("keep me")
    refused = dev_bundle(out)
    assert refused.returncode == 3
    assert "exists and was not made by pdp dev-bundle; remove it first" in refused.stderr
    assert (out / "bundle" / "mine.txt").read_text() == "keep me"


def test_dev_bundle_refuses_a_jwks_file_outside_the_copy(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE_BUNDLE, source)
    routes = source / "routes.yaml"
    routes.write_text(routes.read_text().replace("file: keys/orders.jwks.json", "file: ../x.json"))
    refused = dev_bundle(tmp_path / "dev", source)
    assert refused.returncode == 3
    assert "jwks file '../x.json' is outside the bundle" in refused.stderr
    assert not (tmp_path / "dev" / "x.json").exists() and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no-routes", "no routes.yaml, so no JWT issuer to give a development key"),
        ("rsa-key", "not an EC P-256 key (ES256); remove it to get a new one"),
        ("inside", "inside the bundle"),
    ],
)
def test_dev_bundle_refusals(tmp_path: Path, setup: str, message: str) -> None:
    source, out = tmp_path / "src", tmp_path / "dev"
    shutil.copytree(EXAMPLE_BUNDLE, source)
    if setup == "no-routes":
        (source / "routes.yaml").unlink()
    elif setup == "rsa-key":
        out.mkdir()
        write_key(out / "dev-es256.pem", rsa.generate_private_key(65537, 2048))
    else:
        out = source / "dev"
    refused = dev_bundle(out, source)
    assert refused.returncode == 3, refused.stderr
    assert message in refused.stderr


@pytest.fixture
def made(tmp_path: Path) -> Path:
    out = tmp_path / "dev"
    assert dev_bundle(out).returncode == 0
    return out


def test_token_from_the_bundle_is_what_its_issuer_verifies(made: Path) -> None:
    key = made / "dev-es256.pem"
    done = run_pdp(
        "token", "--key", str(key), "--bundle", str(made / "bundle"), "--sub", "43"
    )  # a process
    assert done.returncode == 0, done.stderr
    public = serialization.load_pem_private_key(key.read_bytes(), password=None).public_key()
    claims = jwt.decode(
        done.stdout.strip(),
        public,
        algorithms=["ES256"],
        audience="orders-api",
        issuer="https://auth.shop.example/",
    )
    assert claims["sub"] == "43" and claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(done.stdout.strip())["kid"] == "dev-es256"


def test_token_with_explicit_claims_and_other_key_types(tmp_path: Path) -> None:
    for key, algorithm in (
        (rsa.generate_private_key(65537, 2048), "RS256"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
    ):
        path = write_key(tmp_path / f"{algorithm}.pem", key)
        done = run_cli(
            *("token", "--key", str(path), "--iss", "https://i/", "--aud", "api"),
            *("--kid", "k1", "--ttl", "60", "--claims", '{"roles": ["admin"], "sub": "ada"}'),
        )
        assert done.returncode == 0, done.stderr
        text = done.stdout.strip()
        claims = jwt.decode(text, key.public_key(), algorithms=[algorithm], audience="api")
        assert (claims["iss"], claims["sub"], claims["roles"]) == ("https://i/", "ada", ["admin"])
        assert claims["exp"] - claims["iat"] == 60
        assert jwt.get_unverified_header(text) == {"alg": algorithm, "kid": "k1", "typ": "JWT"}


def test_token_refusals_name_the_problem_and_never_the_key(made: Path, tmp_path: Path) -> None:
    bundle = str(made / "bundle")
    other = write_key(tmp_path / "other.pem", ec.generate_private_key(ec.SECP256R1()))
    done = run_cli("token", "--key", str(other), "--bundle", bundle)
    assert done.returncode == 2
    assert "the key's public half is in no JWKS file of" in done.stderr
    locked = write_key(tmp_path / "locked.pem", ec.generate_private_key(ec.SECP256R1()), b"pw")
    done = run_cli("token", "--key", str(locked), "--bundle", bundle)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {locked}: the key is encrypted; pdp needs it unencrypted\n"
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    done = run_cli("token", "--key", str(junk), "--bundle", bundle)
    assert done.stderr == f"error: {junk}: not a PEM private key\n"
    assert "bm90IGEga2V5" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --bundle, or all of --iss, --aud and --kid"),
        (["--iss", "x", "--aud", "y"], "give --bundle, or all of --iss, --aud and --kid"),
        (["--bundle", "b", "--iss", "x"], "give either --bundle or those"),
        (["--bundle", "b", "--ttl", "0"], "argument --ttl: must be a whole number from 1 to 86400"),
        (["--bundle", "b", "--claims", "[1]"], "argument --claims: must be a JSON object"),
        (["--bundle", "b", "--claims", "{bad"], "argument --claims: not JSON"),
        (
            ["--bundle", "b", "--claims", '{"sub": "a", "sub": "b"}'],
            'argument --claims: duplicate key "sub"',
        ),
    ],
)
def test_token_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli("token", "--key", str(tmp_path / "k.pem"), *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr, done.stderr
