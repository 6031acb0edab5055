"""/forward-auth's header contract, as nginx, Traefik and Caddy speak it, against real pdp.

nginx `auth_request` sends X-Original-Method/X-Original-URI (as examples/nginx sets them);
Traefik ForwardAuth and Caddy `forward_auth` send X-Forwarded-Method/-Uri/-Host/-Proto/-For
with the client's own headers. Real ES256 JWTs signed with the example issuer's key.
"""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.support.gateway import token
from tests.support.http import call, log_lines, raw, statuses
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess


def nginx(uri: str, method: str = "GET", **headers: str) -> dict[str, str]:
    return {"x-original-uri": uri, "x-original-method": method, **headers}


def traefik(uri: str, method: str = "GET", **headers: str) -> dict[str, str]:
    return {
        "x-forwarded-method": method,
        "x-forwarded-uri": uri,
        "x-forwarded-host": "shop.example",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "203.0.113.7",
        **headers,
    }


def bearer(sub: str = "42") -> str:
    return f"Bearer {token(sub)}"


@pytest.mark.parametrize("family", [nginx, traefik], ids=["nginx", "traefik-caddy"])
def test_owner_is_allowed_with_the_principal_for_upstream(http: str, family) -> None:
    answer = call(
        http, "GET", "/forward-auth", headers=family("/api/orders/o-1001", authorization=bearer())
    )
    assert answer.status == 200, answer.body
    assert answer.header("x-pdp-principal") == 'User::"42"'
    assert answer.header("x-pdp-decision-id")
    assert answer.body == b""


@pytest.mark.parametrize("family", [nginx, traefik], ids=["nginx", "traefik-caddy"])
def test_another_users_order_is_403(http: str, family) -> None:
    answer = call(
        http, "GET", "/forward-auth", headers=family("/api/orders/o-1003", authorization=bearer())
    )
    assert answer.status == 403
    assert answer.json()["error"] == "forbidden"
    assert answer.header("x-pdp-principal") is None


@pytest.mark.parametrize("family", [nginx, traefik], ids=["nginx", "traefik-caddy"])
def test_no_token_is_401_with_a_challenge(http: str, family) -> None:
    answer = call(http, "GET", "/forward-auth", headers=family("/api/orders/o-1001"))
    assert answer.status == 401
    assert answer.header("www-authenticate") == "Bearer"
    assert answer.json()["error"] == "unauthenticated"


def test_a_forged_token_is_401_invalid_token(http: str) -> None:
    from tests.support.gateway import ec_key

    forged = token("42", key=ec_key())
    answer = call(
        http,
        "GET",
        "/forward-auth",
        headers=nginx("/api/orders/o-1001", authorization=f"Bearer {forged}"),
    )
    assert answer.status == 401
    assert answer.header("www-authenticate") == 'Bearer error="invalid_token"'


def test_a_spoofed_principal_header_carries_no_identity(http: str) -> None:
    headers = nginx("/api/orders/o-1001", **{"x-pdp-principal": 'User::"42"'})
    assert call(http, "GET", "/forward-auth", headers=headers).status == 401
    headers["authorization"] = bearer("77")
    answer = call(http, "GET", "/forward-auth", headers=headers)
    assert answer.status == 403  # User 77 may not read 42's order, whatever the header says


def test_unknown_route_has_the_bundles_status(http: str) -> None:
    answer = call(
        http, "GET", "/forward-auth", headers=nginx("/api/nothing", authorization=bearer())
    )
    assert answer.status == 404  # routes.yaml: unknown_route_status: 404
    assert answer.json()["error"] == "unknown_route"


def test_the_query_string_stays_out_of_the_route(http: str) -> None:
    answer = call(
        http,
        "GET",
        "/forward-auth",
        headers=nginx("/api/orders/o-1001?expand=lines", authorization=bearer()),
    )
    assert answer.status == 200


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"x-original-method": "GET"}, 400, "is required"),
        ({"x-original-uri": "/api/orders/o-1001"}, 400, "is required"),
        (
            {
                "x-original-uri": "/api/orders/o-1001",
                "x-forwarded-uri": "/api/admin/orders/o-1001/refund",
                "x-original-method": "GET",
            },
            400,
            "disagree",
        ),
        (
            {
                "x-original-uri": "/api/orders/o-1001",
                "x-original-method": "GET",
                "x-forwarded-method": "POST",
            },
            400,
            "disagree",
        ),
        ({"x-original-uri": "http://evil.example/api", "x-original-method": "GET"}, 400, "path"),
        ({"x-original-uri": "/api/orders/o-1001", "x-original-method": "G E T"}, 400, "method"),
        ({"x-original-uri": "/" + "a" * 9000, "x-original-method": "GET"}, 414, "--max-path-bytes"),
    ],
    ids=[
        "no-uri",
        "no-method",
        "uri-conflict",
        "method-conflict",
        "absolute",
        "bad-method",
        "long",
    ],
)
def test_unclear_original_requests_are_refused_never_decided(
    http_server: ServerProcess, http: str, headers: dict, status: int, reason: str
) -> None:
    headers = {**headers, "authorization": bearer()}
    answer = call(http, "GET", "/forward-auth", headers=headers)
    assert answer.status == status, answer.body
    assert answer.header("x-pdp-principal") is None
    line = log_lines(http_server, answer.json()["decision_id"])
    assert line["api"] == "ForwardAuth" and line["decision"] == "deny"
    assert reason in " ".join(line["errors"])


def test_decisions_are_logged_with_gateway_fields(http_server: ServerProcess, http: str) -> None:
    answer = call(
        http, "GET", "/forward-auth", headers=traefik("/api/orders/o-1001", authorization=bearer())
    )
    line = log_lines(http_server, answer.header("x-pdp-decision-id") or "")
    assert line["api"] == "ForwardAuth"
    assert line["decision"] == "allow"
    assert line["route"] == "read-order"
    assert line["http_status"] == 200
    assert line["source_address"] == "203.0.113.7"  # the right-most untrusted X-Forwarded-For
    assert line["identity_kind"] == "jwt"


def test_a_client_chain_in_x_forwarded_for_is_not_believed_past_the_proxy(
    http_server: ServerProcess, http: str
) -> None:
    headers = traefik(
        "/api/orders/o-1001",
        authorization=bearer(),
        **{"x-forwarded-for": "198.51.100.9, 203.0.113.7"},  # client-sent first, proxy-added last
    )
    answer = call(http, "GET", "/forward-auth", headers=headers)
    line = log_lines(http_server, answer.header("x-pdp-decision-id") or "")
    assert line["source_address"] == "203.0.113.7"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_untrusted_peers_are_refused_and_metrics_count_forward_auth(tmp_path: Path) -> None:
    metrics_port = _free_port()
    with ServerProcess(
        EXAMPLE_BUNDLE,
        "--http-listen", "127.0.0.1:0",
        "--http-trusted-proxies", "10.0.0.0/8",
        "--metrics", f"127.0.0.1:{metrics_port}",
    ) as server:  # fmt: skip
        assert server.http_address is not None
        answer = call(
            server.http_address,
            "GET",
            "/forward-auth",
            headers=nginx("/api/orders/o-1001", authorization=bearer()),
        )
        assert answer.status == 403
        assert answer.header("x-pdp-principal") is None
        line = log_lines(server, answer.json()["decision_id"])
        assert "not a trusted proxy" in line["errors"][0]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
            text = page.read().decode()
    assert 'pdp_decisions_total{api="ForwardAuth",decision="deny"} 1.0' in text


def test_any_method_reaches_forward_auth(http: str) -> None:
    """nginx's subrequest keeps the client's method; only the headers say what is asked."""
    data = (
        b"POST /forward-auth HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        b"X-Original-URI: /api/orders/o-1001\r\nX-Original-Method: GET\r\n"
        b"Authorization: " + bearer().encode() + b"\r\nConnection: close\r\n\r\n"
    )
    assert statuses(raw(http, data)) == [200]
