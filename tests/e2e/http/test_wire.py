"""The HTTP server itself, over raw sockets: limits, timeouts, pipelining, malformed input.

No test here asserts a timing: the short timeouts only make the server act while a test
waits (every wait is bounded and generous).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certs import certificate_authority, leaf
from tests.support.gateway import token
from tests.support.http import call, raw, read_all, statuses
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("wire")

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def tight() -> Iterator[str]:
    """A server with small limits and short timeouts."""
    with ServerProcess(
        EXAMPLE_BUNDLE,
        "--http-listen", "127.0.0.1:0",
        "--http-request-timeout", "0.5",
        "--http-idle-timeout", "0.5",
        "--max-headers", "10",
        "--max-header-bytes", "2048",
        "--max-path-bytes", "256",
        "--max-message-bytes", "2048",
    ) as server:  # fmt: skip
        assert server.http_address is not None
        yield server.http_address


def test_pipelined_requests_are_answered_in_order(tight: str) -> None:
    body = json.dumps({"principal": {"type": "User", "id": "42"}}).encode()
    data = (
        HEALTH
        + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        + b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert statuses(raw(tight, data)) == [200, 404, 400, 200]


def test_a_malformed_request_after_good_ones_is_answered_in_turn_then_closed(tight: str) -> None:
    assert statuses(raw(tight, HEALTH + HEALTH + b"NOT HTTP AT ALL\r\n\r\n" + HEALTH)) == [
        200,
        200,
        400,
    ]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad\x00Name: 1\r\n\r\n", 400),
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (
            b"GET /healthz HTTP/1.1\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(11))
            + b"\r\n",
            431,
        ),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n", 431),
        (b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
        (
            b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"a" * 2048
            + b"\r\n"
            + b"10\r\n"
            + b"a" * 16
            + b"\r\n0\r\n\r\n",
            413,
        ),
        (
            b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n", 417),
    ],
    ids=[
        "garbage",
        "header-no-colon",
        "bad-version",
        "nul-in-name",
        "long-target",
        "many-headers",
        "big-headers",
        "declared-body-too-big",
        "chunked-body-too-big",
        "length-and-chunked",
        "expect-unknown",
    ],
)
def test_bad_requests_get_a_4xx_and_the_connection_closes(
    tight: str, data: bytes, status: int
) -> None:
    answer = raw(tight, data)
    assert statuses(answer) == [status], answer[:300]
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"]


def test_a_slow_request_gets_408_and_is_closed(tight: str) -> None:
    answer = raw(tight, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the headers never end
    assert statuses(answer) == [408]


def test_a_trickled_request_still_times_out(tight: str) -> None:
    host, port = tight.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        end = time.monotonic() + 10
        answer = b""
        while time.monotonic() < end:  # a header byte every 0.1 s keeps nothing alive
            try:
                sock.sendall(b"X")
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            answer += chunk
            if not chunk:
                break
    assert statuses(answer) == [408]


def test_an_idle_connection_is_closed_quietly(tight: str) -> None:
    host, port = tight.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(HEALTH)
        first = sock.recv(65536)
        assert statuses(first) == [200]
        assert read_all(sock, 10) == b""  # closed after the idle timeout, nothing more sent


def test_expect_100_continue(tight: str) -> None:
    host, port = tight.rsplit(":", 1)
    body = b'{"a": 1}'
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        assert statuses(read_all(sock)) == [400]  # unknown field `a`: read and answered


def test_http_1_0_closes_after_the_answer(tight: str) -> None:
    answer = raw(tight, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert statuses(answer) == [200] and b"connection: close" in answer.lower()


def test_head_has_no_body(tight: str) -> None:
    answer = raw(tight, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(answer) == [200] and answer.endswith(b"\r\n\r\n")


def test_an_upgrade_is_ignored_and_nothing_after_it_is_read(tight: str) -> None:
    answer = raw(
        tight,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + HEALTH,
    )
    assert statuses(answer) == [200] and b"connection: close" in answer.lower()


def test_connections_over_the_limit_get_503() -> None:
    with ServerProcess(
        EXAMPLE_BUNDLE, "--http-listen", "127.0.0.1:0", "--http-max-connections", "2"
    ) as server:
        assert server.http_address is not None
        host, port = server.http_address.rsplit(":", 1)
        held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(2)]
        try:
            for sock in held:  # both are served (so the server counted them)
                sock.sendall(HEALTH)
                assert statuses(sock.recv(4096)) == [200]
            assert statuses(raw(server.http_address, HEALTH)) == [503]
        finally:
            for sock in held:
                sock.close()
        wait_for(
            lambda: call(server.http_address, "GET", "/healthz").status == 200,
            what="/healthz answering 200 once the held connections are closed",
        )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def test_unix_socket_listener_trusts_its_peer_for_forward_auth(tmp_path: Path) -> None:
    path = tmp_path / "pdp-http.sock"
    with ServerProcess(EXAMPLE_BUNDLE, "--http-listen", f"unix:{path}") as server:
        assert server.http_address == f"unix:{path}"
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        connection = _UnixConnection(str(path))
        connection.request(
            "GET",
            "/forward-auth",
            headers={
                "x-original-uri": "/api/orders/o-1001",
                "x-original-method": "GET",
                "authorization": f"Bearer {token('42')}",
            },
        )
        answer = connection.getresponse()
        assert answer.status == 200
        assert answer.getheader("x-pdp-principal") == 'User::"42"'
        connection.close()


def test_tls_listener_serves_https_only(tmp_path: Path) -> None:
    ca = certificate_authority("test CA")
    cert, key = leaf(ca, "pdp", server=True).write(tmp_path, "server")
    with ServerProcess(
        EXAMPLE_BUNDLE,
        "--http-listen",
        "127.0.0.1:0",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    ) as server:
        assert server.http_address is not None
        host, port = server.http_address.rsplit(":", 1)
        context = ssl.create_default_context(cadata=ca.cert.decode())
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        connection.request("GET", "/.well-known/authzen-configuration")
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["policy_decision_point"] == f"https://{host}:{port}"
        connection.close()
        assert statuses(raw(server.http_address, HEALTH, wait=3)) == []  # plaintext: no answer
        assert "http_untrusted_transport" not in server.stderr


def test_a_plaintext_non_loopback_listener_is_warned_about() -> None:
    with ServerProcess(EXAMPLE_BUNDLE, "--http-listen", "0.0.0.0:0") as server:
        assert "http_untrusted_transport" in server.stderr


def test_a_busy_http_port_fails_the_start_naming_the_flag() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ServerProcess(EXAMPLE_BUNDLE, "--http-listen", f"127.0.0.1:{port}")
        with pytest.raises(RuntimeError) as failed:
            server.start()
    assert f"--http-listen 127.0.0.1:{port}: cannot listen: address in use" in str(failed.value)
