"""Masking rules from the bundle manifest, applied to real decision log lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.v1 import authorizer_pb2 as pb
from tests.support.observability import TIMEOUT, log_entries, make_bundle, request
from tests.support.server import ServerProcess, authorizer_stub

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("decision-log")  # stdout_server: conftest.py

# Values that must never reach any output of the server, masked or not logged at all.
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImp0aSI6Imp0aS0xIn0.c2lnbmF0dXJl"
API_KEY = "pdp_live_Zk3v9QwErTy7uIoP"
SECRETS = {
    "authorization": f"Bearer {TOKEN}",
    "x_api_key": API_KEY,
    "forwarded_token": TOKEN,  # a JWT under a harmless-looking key is masked by its shape
    "note": f"Bearer {API_KEY}",
    "headers": {"cookie": "session=s3cr3t-cookie-value", "accept": "application/json"},
}
RULES = {
    "context": True,
    "entities": True,
    "mask": ["context.card.number", "context.**.iban", "attrs.email"],
    "drop": ["context.ssn", "context.customer.*.dob"],
}
CONTEXT = {
    "amount": 50,
    "card": {"number": "4111111111111111", "brand": "visa"},
    "ssn": "123-45-6789",
    "payout": {"bank": {"iban": "DE89370400440532013000", "country": "DE"}},
    "customer": {"primary": {"dob": "1990-01-01", "name": "Ann"}},
    "items": [{"iban": "FR1420041010050500013M02606"}],
    "secret_code": "hunter2",
}
ENTITIES = [
    {
        "uid": {"type": "User", "id": "alice"},
        "attrs": {"email": "alice@example.com", "dept": "eng"},
        "parents": [{"type": "Group", "id": "staff"}],
    }
]
RAW_VALUES = (
    "4111111111111111",
    "123-45-6789",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "1990-01-01",
    "hunter2",
    "alice@example.com",
)


@pytest.fixture(scope="module")
def context_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server logging context (`decision_log: {context: true}`, no rules) shared by the
    tests that only call it; each reads the lines written after it started."""
    bundle = make_bundle(
        tmp_path_factory.mktemp("masking") / "bundle", decision_log={"context": True}
    )
    with ServerProcess(bundle) as server:
        yield server


def test_configured_rules_mask_and_drop_context_and_attributes(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", decision_log=RULES)
    with ServerProcess(bundle) as server, authorizer_stub(server.address) as stub:
        response = stub.IsAuthorized(
            request("User::alice", "Action::pay", context=CONTEXT, entities_json=ENTITIES),
            timeout=TIMEOUT,
        )
        (entry,) = log_entries(server, 1)

    assert response.decision == pb.DECISION_ALLOW  # masking is for the log, never the decision
    assert entry["context"] == {
        "amount": 50,
        "card": {"number": "[masked]", "brand": "visa"},
        "payout": {"bank": {"iban": "[masked]", "country": "DE"}},
        "customer": {"primary": {"name": "Ann"}},
        "items": [{"iban": "[masked]"}],
        "secret_code": "[masked]",  # secret-looking key, masked without a rule
    }
    assert entry["entities"] == [
        {
            "uid": 'User::"alice"',
            "parents": ['Group::"staff"'],
            "attrs": {"email": "[masked]", "dept": "eng"},
        }
    ]
    output = server.stdout + server.stderr
    for raw in RAW_VALUES:
        assert raw not in output


def test_context_is_not_logged_unless_configured(stdout_server: ServerProcess) -> None:
    """On the module's server over a bundle without a decision_log section (conftest.py)."""
    server, since = stdout_server, len(stdout_server.stdout_lines)
    with authorizer_stub(server.address) as stub:
        stub.IsAuthorized(
            request(context={**CONTEXT, **SECRETS}, entities_json=ENTITIES), timeout=TIMEOUT
        )
        (entry,) = log_entries(server, 1, since)
    assert "context" not in entry and "entities" not in entry
    output = server.stdout + server.stderr
    for raw in (*RAW_VALUES, TOKEN, API_KEY):
        assert raw not in output


def test_tokens_and_api_keys_never_reach_any_output(context_server: ServerProcess) -> None:
    """Context logging on, no rule naming them: credentials are masked by key or by shape.

    Credentials that reach the log through IsAuthorized context, in single calls and
    batches; test_gateway.py holds the same line for `Check`.
    """
    context = {"amount": 1, **SECRETS}
    server, since = context_server, len(context_server.stdout_lines)
    with authorizer_stub(server.address) as stub:
        stub.IsAuthorized(request(context=context), timeout=TIMEOUT)
        stub.BatchIsAuthorized(
            pb.BatchIsAuthorizedRequest(requests=[request(context=context)]), timeout=TIMEOUT
        )
        entries = log_entries(server, 2, since)

    for entry in entries:
        assert entry["context"] == {
            "amount": 1,
            "authorization": "[masked]",
            "x_api_key": "[masked]",
            "forwarded_token": "[masked]",
            "note": "[masked]",
            "headers": {"cookie": "[masked]", "accept": "application/json"},
        }
    output = server.stdout + server.stderr
    for raw in (TOKEN, API_KEY, "s3cr3t-cookie-value", TOKEN.split(".")[1]):
        assert raw not in output


def test_secret_masking_can_be_turned_off_but_rules_still_apply(tmp_path: Path) -> None:
    rules = {"context": True, "mask_secrets": False, "drop": ["context.**.password"]}
    bundle = make_bundle(tmp_path / "bundle", decision_log=rules)
    context = {"token_count": 3, "login": {"password": "pw-1"}}
    with ServerProcess(bundle) as server, authorizer_stub(server.address) as stub:
        stub.IsAuthorized(request(context=context), timeout=TIMEOUT)
        (entry,) = log_entries(server, 1)
    assert entry["context"] == {"token_count": 3, "login": {}}


def test_context_json_is_logged_as_data(context_server: ServerProcess) -> None:
    message = request("User::bob", "Action::pay")
    message.context_json = json.dumps({"amount": 2**60, "api_key": API_KEY})
    server, since = context_server, len(context_server.stdout_lines)
    with authorizer_stub(server.address) as stub:
        stub.IsAuthorized(message, timeout=TIMEOUT)
        (entry,) = log_entries(server, 1, since)
    assert entry["context"] == {"amount": 2**60, "api_key": "[masked]"}  # exact Long
    assert API_KEY not in server.stdout + server.stderr
