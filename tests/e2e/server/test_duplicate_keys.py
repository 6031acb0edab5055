"""JSON text with a key twice is refused by name: Cedar would silently keep one of the values.

`{"risk": 99, "risk": 1}` reads as risky to a gateway or audit tool that keeps the first
value, and as harmless to Cedar, which keeps the last: pdp refuses it instead of choosing.
"""

from __future__ import annotations

import grpc
import pytest

from pdp.v1 import authorizer_pb2 as pb
from tests.support.bundles import run_pdp
from tests.support.grpc_calls import ALLOW, DENY, TIMEOUT, request, rpc_error
from tests.support.server import REPO

KEEP_ONCE = "a key may appear once in an object (parsers disagree on which value counts)"


@pytest.mark.parametrize(
    ("context_json", "field", "key"),
    [
        ('{"risk": 99, "risk": 1}', "context_json", "risk"),
        ('{"a": {"risk": 1}, "b": {"x": [{"k": 1, "k": 2}]}}', "context_json.b.x[0]", "k"),
        ('{"odd key": {"v": 1, "v": 1}}', 'context_json["odd key"]', "v"),
        ('{"r\\u0069sk": 1, "risk": 99}', "context_json", "risk"),  # the same key, escaped
    ],
)
def test_a_duplicate_context_json_key_is_invalid_argument(
    authorizer, context_json: str, field: str, key: str
) -> None:
    error = rpc_error(authorizer.IsAuthorized, request(context_json=context_json))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f'{field}: duplicate key "{key}": {KEEP_ONCE}'


def test_the_same_key_in_different_objects_is_fine(authorizer) -> None:
    context = '{"risk": 1, "a": {"risk": 2}, "b": [{"risk": 3}, {"risk": 4}]}'
    response = authorizer.IsAuthorized(request(context_json=context), timeout=TIMEOUT)
    assert response.decision == ALLOW
    risky = authorizer.IsAuthorized(request(context_json='{"risk": 99}'), timeout=TIMEOUT)
    assert risky.decision == DENY and list(risky.determining_policies) == ["forbid-risky"]


def test_a_batch_item_with_a_duplicate_key_is_a_deny_and_the_others_are_decided(
    authorizer,
) -> None:
    batch = pb.BatchIsAuthorizedRequest(
        requests=[request(), request(context_json='{"risk": 99, "risk": 1}'), request()]
    )
    results = authorizer.BatchIsAuthorized(batch, timeout=TIMEOUT).results
    assert [r.decision for r in results] == [ALLOW, DENY, ALLOW]
    assert list(results[1].errors) == [
        f'invalid request: requests[1].context_json: duplicate key "risk": {KEEP_ONCE}'
    ]


BOB = '"uid": {"type": "User", "id": "bob"}, "parents": []'


@pytest.mark.parametrize(
    ("text", "field", "key"),
    [
        (f'[{{{BOB}, "attrs": {{"n": 1, "n": 2}}}}]', "entities_json[0].attrs", "n"),
        (f'[{{{BOB}, "attrs": {{}}, "tags": {{"t": 1, "t": 2}}}}]', "entities_json[0].tags", "t"),
        (
            f'[{{{BOB}, "attrs": {{"r": {{"x": {{"y": 1, "y": 1}}}}}}}}]',
            "entities_json[0].attrs.r.x",
            "y",
        ),
    ],
)
def test_a_duplicate_key_in_entities_json_is_named(
    authorizer, text: str, field: str, key: str
) -> None:
    error = rpc_error(authorizer.IsAuthorized, request(entities_json=text))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f'{field}: duplicate key "{key}": {KEEP_ONCE}'
    batch = pb.BatchIsAuthorizedRequest(requests=[request()], entities_json=text)
    error = rpc_error(authorizer.BatchIsAuthorized, batch)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f'{field}: duplicate key "{key}": {KEEP_ONCE}'
    item = pb.BatchIsAuthorizedRequest(requests=[request(), request(entities_json=text)])
    results = authorizer.BatchIsAuthorized(item, timeout=TIMEOUT).results
    assert [r.decision for r in results] == [ALLOW, DENY]
    assert list(results[1].errors) == [
        f'invalid request: requests[1].{field}: duplicate key "{key}": {KEEP_ONCE}'
    ]


def test_a_duplicate_uid_field_of_an_entity_is_named(authorizer) -> None:
    text = (
        '[{"uid": {"type": "User", "id": "bob"}, "uid": {"type": "User", "id": "alice"}, '
        '"attrs": {}, "parents": []}]'
    )
    error = rpc_error(authorizer.IsAuthorized, request(entities_json=text))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f'entities_json[0]: duplicate key "uid": {KEEP_ONCE}'


def test_pdp_authorize_names_the_context_flag() -> None:
    done = run_pdp(
        "authorize",
        str(REPO / "policies"),
        "--principal",
        'User::"42"',
        "--action",
        "readOrder",
        "--resource",
        'Order::"o-1001"',
        "--context",
        '{"method": "GET", "method": "DELETE"}',
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr == f'error: invalid request: --context: duplicate key "method": {KEEP_ONCE}\n'
    )
