"""`pdp serve` with protection.yaml: /forward-auth and Check share it; status, log, alerts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.gateway import bearer, check_request, ext_authz, token
from tests.support.http import call, log_lines
from tests.support.polling import wait_for
from tests.support.protection import protected_bundle
from tests.support.server import ServerProcess

PROTECTION = """
limits:
  - {name: per-user, key: principal, limit: 3, window: 1h}
detectors:
  bola_enumeration: {window: 1h, distinct_ids: 2, denied_fraction: 0.5, action: block,
                     cooldown: 1h}
"""


def forward(http: str, path: str, sub: str) -> object:
    headers = {"x-original-uri": path, "x-original-method": "GET", **bearer(token(sub=sub))}
    return call(http, "GET", "/forward-auth", headers=headers)


def read_when(read: Callable[[], str], text: str, wait: float = 5.0) -> str:
    """What `read` returns once it holds `text`."""

    def holding() -> str | None:
        found = read()
        return found if text in found else None

    return wait_for(holding, wait, repr(text))


def test_forward_auth_and_check_share_one_limit_and_blocks_show_in_status(tmp_path: Path) -> None:
    bundle = protected_bundle(tmp_path, PROTECTION)
    alerts = tmp_path / "alerts.jsonl"
    args = ("--http-listen", "127.0.0.1:0", "--alerts", str(alerts))
    with ServerProcess(bundle, *args) as server:
        assert server.http_address is not None and server.address is not None
        assert [forward(server.http_address, "/api/orders/o-1", "42").status for _ in range(2)] == [
            200,
            200,
        ]
        with ext_authz(server.address) as stub:
            third = stub.Check(check_request("GET", "/api/orders/o-1", bearer(token(sub="42"))))
            assert third.HasField("ok_response")
            fourth = stub.Check(check_request("GET", "/api/orders/o-1", bearer(token(sub="42"))))
            assert fourth.denied_response.status.code == 429
        over = forward(server.http_address, "/api/orders/o-1", "42")
        assert over.status == 429
        assert over.header("retry-after") == "1200"
        assert over.header("ratelimit-policy") == '"per-user";q=3;w=3600'
        assert over.header("ratelimit") == '"per-user";r=0;t=1200'
        logged = log_lines(server, over.json()["decision_id"])
        assert logged["decision"] == "deny" and logged["http_status"] == 429
        # User 43 enumerates: the third distinct id fires the detector (one event, in --alerts).
        answers = [
            forward(server.http_address, f"/api/orders/o-{9000 + n}", "43") for n in range(3)
        ]
        assert [a.status for a in answers] == [403, 403, 403]
        blocked = forward(server.http_address, "/api/orders/o-9100", "43")
        assert blocked.status == 429 and blocked.json()["error"] == "blocked"
        event = json.loads(read_when(alerts.read_text, "bola_enumeration").splitlines()[0])
        assert event["detector"] == "bola_enumeration" and event["action"] == "block"
        assert event["principal"] == 'User::"43"'
        assert '"event":"protection"' not in server.stdout  # --alerts: not on the decision log
        status = run_cli("status", "--address", server.address, "--protection")
        assert status.returncode == 0, status.stderr
        assert "protection:     enforce (state: memory)" in status.stdout
        assert 'block    p:User::"43"  by bola_enumeration' in status.stdout
        as_json = run_cli("status", "--address", server.address, "--json")
        found = json.loads(as_json.stdout)["protection"]
        assert found["mode"] == "enforce"
        assert [p["subject"] for p in found["penalties"]] == ['p:User::"43"']


def test_events_go_on_the_decision_log_without_alerts(tmp_path: Path) -> None:
    bundle = protected_bundle(tmp_path, PROTECTION)
    with ServerProcess(bundle) as server, ext_authz(server.address or "") as stub:
        for n in range(4):
            stub.Check(check_request("GET", f"/api/orders/o-{9000 + n}", bearer(token(sub="43"))))
        line = read_when(lambda: server.stdout, '"event":"protection"')
        events = [json.loads(x) for x in line.splitlines() if '"event":"protection"' in x]
        assert len(events) == 1 and events[0]["until"] is not None
