"""Credentials a request presents are all seen and all understood, or the request is refused.

Through a real `pdp serve --max-headers 1000` on a Unix socket, with real ES256 JWTs: every
header Envoy sends is read (a second Authorization or an unknown API key past the 256th
header is a 401), an Authorization header pdp cannot read is a 401 (`invalid_request`),
never an anonymous caller, and method override headers never reach the upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc

from tests.support.cli import serve_usage_error
from tests.support.gateway import (
    REPORTING_KEY,
    bundle_with,
    check_request,
    ec_key,
    ext_authz,
    headers_of,
    log_entry,
    metadata_of,
    token,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import InProcessServer, ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("extauthz-credentials")

OK, UNAUTHENTICATED = 0, 16
INVALID_REQUEST = 'Bearer error="invalid_request"'
INVALID_TOKEN = 'Bearer error="invalid_token"'
MINE = "/api/users/42/orders"  # user 42 may list these
PUBLIC = "/api/orders/o-1001"  # open to Anonymous in the bundle below
# The example bundle, plus one order anybody may read without a credential.
PUBLIC_ORDER = """\
@id("anonymous-denied")
forbid (principal is Anonymous, action, resource)
unless { action == Action::"readOrder" && resource == Order::"o-1001" };

@id("public-order")
permit (principal is Anonymous, action == Action::"readOrder", resource == Order::"o-1001");
"""
OVERRIDES = ("x-http-method-override", "x-method-override", "x-http-method")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("credentials")
    bundle = bundle_with(folder / "bundle", files={"baseline.cedar": PUBLIC_ORDER})
    with ServerProcess(bundle, "--max-headers", "1000", listen=f"unix:{folder}/pdp.sock") as srv:
        yield srv


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizationStub]:
    assert server.address is not None
    with ext_authz(server.address) as client:
        yield client


def check(stub: pb_grpc.AuthorizationStub, *args: Any, **kwargs: Any) -> pb.CheckResponse:
    return stub.Check(check_request(*args, **kwargs), timeout=10)


def filler(count: int) -> list[tuple[str, str]]:
    return [(f"x-filler-{i}", "v") for i in range(count)]


def refused(
    server: ServerProcess, response: pb.CheckResponse, reason: str, www: str
) -> dict[str, Any]:
    """A 401 for a presented credential, with `reason`; returns its decision log line."""
    assert response.status.code == UNAUTHENTICATED
    assert not response.HasField("ok_response")
    denied = response.denied_response
    assert denied.status.code == 401
    assert headers_of(denied.headers)["www-authenticate"] == www
    assert json.loads(denied.body)["error"] == "unauthenticated"
    metadata = metadata_of(response)
    assert metadata["reason"] == reason
    assert "principal" not in metadata and metadata["identity"] == "none"
    entry = log_entry(server, metadata["decision_id"])
    assert entry["authn_failure"] == reason and entry["principal"] is None
    assert entry["http_status"] == 401
    return entry


# --- every header is seen ---------------------------------------------------------------


def test_a_valid_token_and_300_other_headers_are_allowed(stub: pb_grpc.AuthorizationStub) -> None:
    header_map = [("authorization", f"Bearer {token('42')}"), *filler(300)]
    response = check(stub, "GET", MINE, header_map=header_map)
    assert response.status.code == OK
    assert metadata_of(response)["principal"] == 'User::"42"'


@pytest.mark.parametrize("forged_by", ["attacker", "issuer"])
def test_a_second_authorization_past_the_256th_header_is_seen(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub, forged_by: str
) -> None:
    second = token("admin-ada", key=ec_key()) if forged_by == "attacker" else token("admin-ada")
    header_map = [
        ("authorization", f"Bearer {token('42')}"),
        *filler(300),
        ("authorization", f"Bearer {second}"),
    ]
    response = check(stub, "GET", MINE, header_map=header_map)
    refused(server, response, "duplicate_credential", INVALID_REQUEST)


def test_an_unknown_api_key_past_the_256th_header_is_seen(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    header_map = [
        ("authorization", f"Bearer {token('42')}"),
        *filler(300),
        ("x-api-key", "not-a-known-key"),
    ]
    response = check(stub, "GET", MINE, header_map=header_map)
    refused(server, response, "unknown_api_key", INVALID_TOKEN)


def test_the_headers_map_form_with_many_headers_and_a_joined_authorization(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    """Envoy's `headers` map joins repeated headers with a comma: never a single token."""
    many = dict(filler(300))
    good = token("42")
    allowed = check(stub, "GET", MINE, {**many, "authorization": f"Bearer {good}"})
    assert allowed.status.code == OK
    for joined in (f"Bearer {good},Bearer {token('admin-ada')}", f"Bearer {good}, Bearer {good}"):
        response = check(stub, "GET", MINE, {**many, "authorization": joined})
        refused(server, response, "duplicate_credential", INVALID_REQUEST)
    unknown = check(
        stub, "GET", MINE, {**many, "authorization": f"Bearer {good}", "x-api-key": "nope"}
    )
    refused(server, unknown, "unknown_api_key", INVALID_TOKEN)
    doubled_key = check(stub, "GET", PUBLIC, {**many, "x-api-key": f"{REPORTING_KEY},nope"})
    refused(server, doubled_key, "unknown_api_key", INVALID_TOKEN)


def test_headers_over_the_limit_are_a_431(stub: pb_grpc.AuthorizationStub) -> None:
    response = check(stub, "GET", MINE, header_map=filler(1001))
    assert response.denied_response.status.code == 431
    assert metadata_of(response)["reason"] == "limit_exceeded"


def test_a_path_limit_past_what_the_normalizer_reads_is_a_usage_error() -> None:
    run = serve_usage_error(str(EXAMPLE_BUNDLE), "--max-path-bytes", "70000")
    assert run.returncode == 2
    assert "--max-path-bytes: must be a whole number from 1 to 65536" in run.stderr


def test_a_raised_path_limit_is_honoured_by_the_route_match(tmp_path: Path) -> None:
    """`--max-path-bytes 20000` lets a 10,000-byte path through to its route (0.1.0: the
    normalizer's own 8192-byte cap refused it as an unknown route)."""
    path = f"{MINE}?q={'a' * 10_000}"
    with (
        ServerProcess(
            EXAMPLE_BUNDLE, "--max-path-bytes", "20000", listen=f"unix:{tmp_path}/s"
        ) as srv,
        ext_authz(srv.address or "") as client,
    ):
        response = check(client, "GET", path, {"authorization": f"Bearer {token('42')}"})
        assert response.status.code == OK, metadata_of(response)
        assert metadata_of(response)["route"] == "list-user-orders"


# --- a credential that is presented but not understood ------------------------------------


def test_no_credential_on_the_public_order_is_allowed_as_anonymous(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    response = check(stub, "GET", PUBLIC)
    assert response.status.code == OK
    assert metadata_of(response)["principal"] == 'Anonymous::"anonymous"'


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Basic dXNlcjpwYXNzd29yZA==", "unsupported_scheme"),
        ("Token {jwt}", "unsupported_scheme"),
        ("Digest username=x", "unsupported_scheme"),
        ("{jwt}", "unsupported_scheme"),  # a bare token, no scheme
        ("", "malformed_authorization"),
        ("   ", "malformed_authorization"),
        ("Bearer", "malformed_authorization"),
        ("Bearer    ", "malformed_authorization"),
        ("Bearer {jwt} garbage", "malformed_authorization"),
        ("Bearer {jwt} ", None),  # trailing whitespace is HTTP's, not the token's: allowed
        ('Bearer "{jwt}"', "malformed_authorization"),
        ("Bearer {jwt},Bearer {jwt}", "duplicate_credential"),
    ],
)
def test_an_authorization_pdp_cannot_read_is_a_401_never_anonymous(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub, value: str, reason: str | None
) -> None:
    jwt = token("42")
    response = check(stub, "GET", PUBLIC, {"authorization": value.format(jwt=jwt)})
    if reason is None:
        assert response.status.code == OK
        assert metadata_of(response)["principal"] == 'User::"42"'
        return
    entry = refused(server, response, reason, INVALID_REQUEST)
    line = json.dumps(entry)
    assert jwt not in line and jwt.split(".")[2] not in line  # the token is never logged


def test_bearer_is_case_insensitive_and_may_be_followed_by_several_spaces(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    for value in ("bearer {jwt}", "BEARER {jwt}", "Bearer   {jwt}"):
        response = check(stub, "GET", MINE, {"authorization": value.format(jwt=token("42"))})
        assert response.status.code == OK, value


def test_an_unreadable_authorization_next_to_a_valid_api_key_is_still_a_401(
    server: ServerProcess, stub: pb_grpc.AuthorizationStub
) -> None:
    headers = {"authorization": "Basic dXNlcjpwYXNzd29yZA==", "x-api-key": REPORTING_KEY}
    response = check(stub, "GET", PUBLIC, headers)
    refused(server, response, "unsupported_scheme", INVALID_REQUEST)


# --- method override headers ----------------------------------------------------------------


def test_method_override_headers_are_removed_on_allow(stub: pb_grpc.AuthorizationStub) -> None:
    headers = {"authorization": f"Bearer {token('42')}", "x-http-method-override": "DELETE"}
    response = check(stub, "GET", "/api/orders/o-1001", headers)
    assert response.status.code == OK
    removed = list(response.ok_response.headers_to_remove)
    assert removed == ["x-user-id", "x-forwarded-user", *OVERRIDES]


def test_a_bundle_may_keep_method_override_headers(tmp_path: Path) -> None:
    routes = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
    marker = "  strip_headers: [x-user-id, x-forwarded-user]\n"
    assert marker in routes
    routes = routes.replace(marker, marker + "  strip_method_overrides: false\n")
    bundle = bundle_with(tmp_path / "bundle", routes)
    with (  # a bundle setting, read by the servicer: the real server in this process
        InProcessServer.over(bundle, f"unix:{tmp_path}/s") as srv,
        ext_authz(srv.address) as client,
    ):
        headers = {"authorization": f"Bearer {token('42')}", "x-http-method-override": "DELETE"}
        response = check(client, "GET", "/api/orders/o-1001", headers)
        assert response.status.code == OK
        assert list(response.ok_response.headers_to_remove) == ["x-user-id", "x-forwarded-user"]
