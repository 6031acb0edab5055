"""JSON request bodies of the HTTP edge: a lone surrogate escape (`"\\ud800"`, JSON's grammar
but no Unicode text) is a 400 naming where it is, on every JSON route, never a 500."""

from __future__ import annotations

import asyncio
import json

import pytest

from pdp.bundle import load_bundle
from pdp.decisionlog import Recorder
from pdp.errors import BodyError
from pdp.http import jsonio
from pdp.http.app import HttpEdge
from pdp.http.messages import Request
from pdp.http.proxies import TrustedProxies
from pdp.live.store import BundleStore
from pdp.server.extauthz import ExtAuthzService
from pdp.server.limits import Limits
from tests.support.paths import EXAMPLE_BUNDLE

LONE = '"\\ud800"'  # the JSON text of a lone high surrogate


def post(path: str, body: str) -> Request:
    headers = [("content-type", "application/json")]
    return Request("POST", path, path, "", headers, body.encode(), "127.0.0.1", False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"a": ' + LONE + "}", "a"),
        ('{"a": {"b": [1, "x\\udfffy"]}}', "a.b[1]"),
        ("{" + LONE + ": 1}", ""),  # a key: named by the object holding it
        ('{"a": {"\\udc00k": 1}}', "a"),
        ('{"odd key": {"b": ' + LONE + "}}", '["odd key"].b'),  # as duplicate keys are named
    ],
)
def test_a_lone_surrogate_is_refused_naming_where(body: str, field: str) -> None:
    with pytest.raises(BodyError) as caught:
        jsonio.read_object(post("/", body))
    assert caught.value.status == 400
    assert caught.value.field == field
    assert "surrogate" in caught.value.message


def test_escaped_pairs_and_escaped_backslashes_are_text() -> None:
    body = '{"smile": "\\ud83d\\ude00", "not": "\\\\ud800", "e": "\\u00e9"}'
    assert jsonio.read_object(post("/", body)) == {
        "smile": "\U0001f600",
        "not": "\\ud800",
        "e": "\u00e9",
    }


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/is_authorized",
            {
                "principal": {"type": "User", "id": "@"},
                "action": {"type": "Action", "id": "x"},
                "resource": {"type": "Order", "id": "o"},
            },
            "principal.id",
        ),
        (
            "/access/v1/evaluation",
            {
                "subject": {"type": "User", "id": "@"},
                "action": {"name": "x"},
                "resource": {"type": "Order", "id": "o"},
            },
            "subject.id",
        ),
    ],
)
def test_the_json_routes_answer_400_not_500(path: str, body: dict[str, object], field: str) -> None:
    store = BundleStore()
    store.activate(load_bundle(EXAMPLE_BUNDLE))
    edge = HttpEdge(store, Limits(), Recorder(), ExtAuthzService(store), TrustedProxies())
    text = json.dumps(body).replace('"@"', LONE)
    response = asyncio.run(edge.handle(post(path, text)))
    answer = json.loads(response.body)
    assert response.status == 400, answer
    assert answer["error"] == "invalid_argument" and answer["field"] == field
