"""A JWKS URL through a real server: key rotation with an overlap window, rate-limited refresh.

The rotation runs on an in-process server whose key sets read a manual clock (the waits for
the rate limit and the cache are clock steps, not sleeps); the weak-key case runs `pdp serve`,
whose stderr is what it checks."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc

from pdp.authn.jwks import Keyring
from tests.support.clock import ManualClock
from tests.support.gateway import (
    JwksServer,
    bearer,
    bundle_with,
    check_request,
    ec_key,
    ext_authz,
    metadata_of,
    public_jwk,
    token,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import InProcessServer, ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("extauthz-jwks")

MIN_REFRESH = 1.0  # seconds between two fetches of the key set, at most
CACHE = 4.0  # seconds a fetched key set is fresh
OLD, NEW = ec_key(), ec_key()


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.serve("/jwks", [public_jwk(OLD, "old", "ES256")])
        yield server


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def stub(
    jwks: JwksServer, clock: ManualClock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pb_grpc.AuthorizationStub]:
    folder = tmp_path_factory.mktemp("jwks-url")
    text = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
    url_keys = (
        f"url: {jwks.url('/jwks')}\n"
        f"          cache_seconds: {CACHE}\n"
        f"          min_refresh_seconds: {MIN_REFRESH}\n"
        f"          timeout_seconds: 1"
    )
    text = text.replace("file: keys/orders.jwks.json", url_keys, 1)
    root = bundle_with(folder / "bundle", text)
    keyring = Keyring(clock=clock)  # fetches are real HTTP; only their timing is on `clock`
    server = InProcessServer.over(root, f"unix:{folder}/pdp.sock", keyring=keyring)
    with server, ext_authz(server.address) as client:
        yield client


def status(stub: pb_grpc.AuthorizationStub, key: object, kid: str) -> tuple[int, str]:
    response = stub.Check(
        check_request("GET", "/api/users/42/orders", bearer(token("42", key=key, kid=kid))),
        timeout=10,
    )
    metadata = metadata_of(response)
    return response.status.code, metadata.get("reason", "")


def test_rotation_with_an_overlap_window_and_a_rate_limit(
    stub: pb_grpc.AuthorizationStub, jwks: JwksServer, clock: ManualClock
) -> None:
    # No fetch at load: the key set is fetched on first use.
    assert jwks.count("/jwks") == 0
    assert status(stub, OLD, "old") == (0, "")
    assert jwks.count("/jwks") == 1

    # Unknown kids (a new key not yet published, or garbage) may trigger one refresh per
    # MIN_REFRESH, no more, however many tokens arrive.
    clock.advance(MIN_REFRESH + 0.2)
    for _ in range(10):
        assert status(stub, NEW, f"kid-{uuid.uuid4().hex[:8]}") == (16, "unknown_kid")
    assert jwks.count("/jwks") == 2

    # The issuer publishes the new key beside the old one; the first token signed with it
    # refreshes the set (once the rate limit allows), and both keys verify.
    jwks.serve("/jwks", [public_jwk(OLD, "old", "ES256"), public_jwk(NEW, "new", "ES256")])
    clock.advance(MIN_REFRESH + 0.2)
    assert status(stub, NEW, "new") == (0, "")
    assert status(stub, OLD, "old") == (0, "")
    assert jwks.count("/jwks") == 3

    # The old key is retired; once the cached set expires, its tokens stop verifying.
    jwks.serve("/jwks", [public_jwk(NEW, "new", "ES256")])
    clock.advance(CACHE + 0.2)
    assert status(stub, OLD, "old") == (16, "unknown_kid")
    assert status(stub, NEW, "new") == (0, "")
    assert jwks.count("/jwks") == 4


def test_a_weak_key_in_a_fetched_set_is_left_out_and_logged_as_json(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The strong keys of the set keep verifying; the 1024-bit one verifies nothing, and
    nothing but JSON reaches stderr (0.1.0: a raw InsecureKeyLengthWarning, and an allow)."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    folder = tmp_path_factory.mktemp("weak-url")
    with JwksServer() as keys:
        url = keys.serve(
            "/jwks", [public_jwk(OLD, "good", "ES256"), public_jwk(weak, "weak", "RS256")]
        )
        text = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
        text = text.replace("file: keys/orders.jwks.json", f"url: {url}", 1)
        text = text.replace("algorithms: [ES256]", "algorithms: [ES256, RS256]", 1)
        root = bundle_with(folder / "bundle", text)
        with (
            ServerProcess(root, listen=f"unix:{folder}/pdp.sock") as server,
            ext_authz(server.address or "") as stub,
        ):
            assert status(stub, OLD, "good") == (0, "")
            with warnings.catch_warnings():  # PyJWT warns when signing with it, here
                warnings.simplefilter("ignore")
                forged = token("admin-ada", key=weak, algorithm="RS256", kid="weak")
            response = stub.Check(
                check_request("GET", "/api/users/admin-ada/orders", bearer(forged)), timeout=10
            )
            assert response.status.code == 16
            assert metadata_of(response)["reason"] == "unknown_kid"
            wait_for(lambda: any("jwks_weak_keys" in line for line in server.stderr_lines))
    lines = [json.loads(line) for line in server.stderr_lines if line.strip()]  # all JSON
    (logged,) = [line for line in lines if line.get("event") == "jwks_weak_keys"]
    assert logged["level"] == "warning" and logged["url"] == url
    assert logged["keys"] == [
        "key 1 (weak): too weak for RS256, refused: The RSA key is 1024 bits long, which is "
        "below the minimum recommended size of 2048 bits. See NIST SP 800-131A."
    ]
    assert not any(line.get("logger") == "py.warnings" for line in lines)
