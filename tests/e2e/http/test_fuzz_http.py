"""Property-based fuzzing of every HTTP route, live: never a 5xx, never an allow it should not be.

The JSON routes serve `guarded_bundle`, whose only permit is ALLOWED with `context.ok`: any
allow for another question is a fail-open bug. /forward-auth serves the example bundle with
random (never valid) credentials: nothing may pass. Raw bytes must get a 4xx or nothing.
After each run the server is still alive and ready.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hardening import ALLOWED, guarded_bundle
from tests.support.http import call, post, raw, statuses
from tests.support.server import ServerProcess

pytestmark = pytest.mark.xdist_group("http-fuzz")

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
(P_TYPE, P_ID), (A_TYPE, A_ID), (R_TYPE, R_ID) = ALLOWED

text = st.sampled_from(
    ["", "alice", "d1", "User", "Doc", "read", "Action", "::", '"', "\x00", "é"]
) | st.text(max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
uid = st.one_of(
    st.fixed_dictionaries({"type": text, "id": text}),
    st.fixed_dictionaries({"type": st.just(P_TYPE), "id": st.just(P_ID)}),
    values,
)
v1_body = st.dictionaries(
    st.sampled_from(
        [
            "principal",
            "action",
            "resource",
            "context",
            "context_json",
            "entities",
            "entities_json",
            "contextJson",
            "x",
        ]
    ),
    uid,
    max_size=6,
)
authzen_entity = st.one_of(
    st.fixed_dictionaries({"type": text, "id": text}, optional={"properties": values}),
    values,
)
authzen_body = st.fixed_dictionaries(
    {},
    optional={
        "subject": authzen_entity,
        "resource": authzen_entity,
        "action": st.one_of(
            st.fixed_dictionaries({"name": text}, optional={"properties": values}), values
        ),
        "context": values,
        "options": st.one_of(values, st.fixed_dictionaries({"evaluations_semantic": text})),
        "evaluations": st.one_of(
            values,
            st.lists(
                st.dictionaries(
                    st.sampled_from(["subject", "resource", "action", "context"]),
                    authzen_entity,
                    max_size=3,
                ),
                max_size=4,
            ),
        ),
    },
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = guarded_bundle(tmp_path_factory.mktemp("guarded") / "bundle")
    with ServerProcess(
        root, "--http-listen", "127.0.0.1:0", "--max-batch", "10", "--http-request-timeout", "0.5"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def example(http_server: ServerProcess) -> ServerProcess:
    """The worker's shared server over the example bundle (conftest.py): /forward-auth is
    fuzzed there, and it must survive for every HTTP test after this one."""
    return http_server


def _is_allowed_question(principal: Any, action: Any, resource: Any) -> bool:
    return (
        principal == {"type": P_TYPE, "id": P_ID}
        and action in ({"type": A_TYPE, "id": A_ID}, {"name": A_ID})
        and resource == {"type": R_TYPE, "id": R_ID}
    )


def _alive(server: ServerProcess) -> None:
    assert server.process is not None and server.process.poll() is None
    assert server.http_address is not None
    assert call(server.http_address, "GET", "/readyz").status == 200


@FUZZ
@given(body=v1_body)
def test_v1_routes_never_fail_open_or_500(guarded: ServerProcess, body: dict) -> None:
    address = guarded.http_address
    assert address is not None
    answer = post(address, "/v1/is_authorized", body)
    assert answer.status in (200, 400, 413), answer.body
    if answer.status == 200 and answer.json()["decision"] == "DECISION_ALLOW":
        assert _is_allowed_question(body.get("principal"), body.get("action"), body.get("resource"))
    batch = post(address, "/v1/batch_is_authorized", {"requests": [body, body]})
    assert batch.status in (200, 400, 413), batch.body
    plan = post(address, "/v1/plan_resources", {**body, "resource_type": "Doc"})
    assert plan.status in (200, 400, 413), plan.body
    if plan.status == 200:
        assert plan.json()["kind"] != "ALWAYS_ALLOWED"


@FUZZ
@given(body=authzen_body)
def test_authzen_routes_never_fail_open_or_500(guarded: ServerProcess, body: dict) -> None:
    address = guarded.http_address
    assert address is not None
    for path in ("/access/v1/evaluation", "/access/v1/evaluations"):
        answer = post(address, path, body)
        assert answer.status in (200, 400, 413), answer.body
        if answer.status != 200:
            assert answer.json()["message"]
            continue
        found = answer.json()
        if "evaluations" in found:
            for item, result in zip(
                body.get("evaluations") or [], found["evaluations"], strict=False
            ):
                if result["decision"]:
                    merged = {
                        k: item.get(k, body.get(k)) for k in ("subject", "action", "resource")
                    }
                    assert _is_allowed_question(
                        merged["subject"], merged["action"], merged["resource"]
                    )
        elif found["decision"]:
            assert _is_allowed_question(
                body.get("subject"), body.get("action"), body.get("resource")
            )


header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@FUZZ
@given(
    uri=st.one_of(header_value, st.just("/api/orders/o-1001"), st.just("/api/orders/%2e%2e/admin")),
    method=st.one_of(header_value, st.sampled_from(["GET", "POST", "DELETE"])),
    authorization=st.one_of(st.none(), header_value, st.just("Bearer eyJhbGciOiJub25lIn0.e30.")),
    family=st.sampled_from(["original", "forwarded", "both"]),
)
def test_forward_auth_never_lets_forged_credentials_through(
    example: ServerProcess, uri: str, method: str, authorization: str | None, family: str
) -> None:
    address = example.http_address
    assert address is not None
    headers: dict[str, str] = {}
    if family in ("original", "both"):
        headers.update({"x-original-uri": uri, "x-original-method": method})
    if family in ("forwarded", "both"):
        headers.update(
            {
                "x-forwarded-uri": uri + ("x" if family == "both" else ""),
                "x-forwarded-method": method,
            }
        )
    if authorization is not None:
        headers["authorization"] = authorization
    try:
        answer = call(address, "GET", "/forward-auth", headers=headers, content_type=None)
    except ValueError:  # http.client refuses to send some values itself
        return
    assert answer.status in (400, 401, 403, 404, 414), answer.body
    assert answer.header("x-pdp-principal") is None


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=300))
def test_raw_bytes_get_a_4xx_or_nothing(guarded: ServerProcess, data: bytes) -> None:
    address = guarded.http_address
    assert address is not None
    found = statuses(raw(address, data + b"\r\n\r\n", wait=5))
    assert all(400 <= status < 500 for status in found), found


def test_the_servers_survive(guarded: ServerProcess, example: ServerProcess) -> None:
    _alive(guarded)
    _alive(example)
    body = {
        "principal": {"type": P_TYPE, "id": P_ID},
        "action": {"type": A_TYPE, "id": A_ID},
        "resource": {"type": R_TYPE, "id": R_ID},
        "context": {"ok": True},
    }
    assert guarded.http_address is not None
    assert (
        post(guarded.http_address, "/v1/is_authorized", body).json()["decision"] == "DECISION_ALLOW"
    )
    assert "Traceback" not in guarded.stderr and "Traceback" not in example.stderr
