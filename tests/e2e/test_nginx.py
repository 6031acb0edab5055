"""A real nginx (Debian's) running examples/nginx/nginx.conf in front of a real upstream,
asking a real `pdp serve --http-listen` about every request, with real JWTs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.gateway import token
from tests.support.http import Answer, call, log_lines
from tests.support.nginx import EchoUpstream, NginxUnavailable, free_port, nginx
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import REPO, ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("nginx")

EXAMPLE = REPO / "examples" / "nginx" / "nginx.conf"


@dataclass
class Stack:
    pdp: ServerProcess
    upstream: EchoUpstream
    address: str

    def get(self, path: str, **headers: str) -> Answer:
        return call(self.address, "GET", path, headers=headers, content_type=None)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pdp_port, nginx_port = free_port(), free_port()
    with (
        ServerProcess(EXAMPLE_BUNDLE, "--http-listen", f"127.0.0.1:{pdp_port}") as pdp,
        EchoUpstream() as upstream,
    ):
        config = (
            EXAMPLE.read_text()
            .replace("127.0.0.1:8181", f"127.0.0.1:{pdp_port}")
            .replace("127.0.0.1:9000", f"127.0.0.1:{upstream.port}")
            .replace("127.0.0.1:8080", f"127.0.0.1:{nginx_port}")
        )
        try:
            with nginx(config, tmp_path_factory.mktemp("nginx"), nginx_port):
                yield Stack(pdp, upstream, f"127.0.0.1:{nginx_port}")
        except NginxUnavailable as exc:
            pytest.fail(f"a real nginx is needed for these tests: {exc}")


def test_the_owner_reaches_the_upstream_with_pdps_principal(stack: Stack) -> None:
    before = len(stack.upstream.seen)
    answer = stack.get("/api/orders/o-1001", authorization=f"Bearer {token('42')}")
    assert answer.status == 200, answer.body
    seen = answer.json()
    assert seen["path"] == "/api/orders/o-1001"
    assert seen["headers"]["x-pdp-principal"] == 'User::"42"'
    decision_id = seen["headers"]["x-pdp-decision-id"]
    line = log_lines(stack.pdp, decision_id)
    assert line["api"] == "ForwardAuth"
    assert (line["decision"], line["route"], line["source_address"]) == (
        "allow",
        "read-order",
        "127.0.0.1",
    )
    assert len(stack.upstream.seen) == before + 1


def test_another_users_order_is_403_and_never_reaches_the_upstream(stack: Stack) -> None:
    before = len(stack.upstream.seen)
    answer = stack.get("/api/orders/o-1003", authorization=f"Bearer {token('77')}")
    assert answer.status == 403
    assert len(stack.upstream.seen) == before


def test_no_token_is_401_with_pdps_challenge(stack: Stack) -> None:
    before = len(stack.upstream.seen)
    answer = stack.get("/api/orders/o-1001")
    assert answer.status == 401
    assert answer.header("www-authenticate") == "Bearer"
    assert len(stack.upstream.seen) == before


def test_spoofed_identity_headers_never_reach_the_upstream(stack: Stack) -> None:
    answer = stack.get(
        "/api/orders/o-1001",
        authorization=f"Bearer {token('42')}",
        **{
            "x-pdp-principal": 'User::"admin-ada"',
            "x-pdp-decision-id": "forged",
            "x-user-id": "admin-ada",
            "x-forwarded-user": "admin-ada",
        },
    )
    assert answer.status == 200
    headers = answer.json()["headers"]
    assert headers["x-pdp-principal"] == 'User::"42"'
    assert headers["x-pdp-decision-id"] != "forged"
    assert "x-user-id" not in headers and "x-forwarded-user" not in headers


def test_a_spoofed_principal_without_a_token_is_still_401(stack: Stack) -> None:
    before = len(stack.upstream.seen)
    answer = stack.get("/api/orders/o-1001", **{"x-pdp-principal": 'User::"42"'})
    assert answer.status == 401
    assert len(stack.upstream.seen) == before


def test_a_client_chosen_forwarded_uri_is_not_what_pdp_decides_on(stack: Stack) -> None:
    """The client asks for 43's order and claims, in X-Forwarded-Uri, to ask for its own:
    nginx clears that header in the subrequest, so pdp decides on the real URI."""
    before = len(stack.upstream.seen)
    answer = stack.get(
        "/api/orders/o-1003",
        authorization=f"Bearer {token('77')}",
        **{"x-forwarded-uri": "/api/orders/o-2001", "x-forwarded-method": "GET"},
    )
    assert answer.status == 403
    assert len(stack.upstream.seen) == before


def test_an_unknown_route_is_a_500_from_nginx_and_never_reaches_the_upstream(
    stack: Stack,
) -> None:
    """auth_request turns pdp's 404 (unknown_route_status) into a 500: still refused."""
    before = len(stack.upstream.seen)
    answer = stack.get("/api/nothing-here", authorization=f"Bearer {token('42')}")
    assert answer.status == 500
    assert len(stack.upstream.seen) == before


def test_the_example_config_is_the_one_tested() -> None:
    text = EXAMPLE.read_text()
    for line in (
        "auth_request /_pdp;",
        "proxy_set_header x-pdp-principal $pdp_principal;",
        'proxy_set_header X-Forwarded-Uri "";',
    ):
        assert line in text
    assert Path(EXAMPLE.parent / "README.md").is_file()
