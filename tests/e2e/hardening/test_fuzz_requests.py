"""Property-based fuzzing of IsAuthorized, BatchIsAuthorized and PlanResources, live.

The pdp.v1 server serves `guarded_bundle`, whose only permit is for ALLOWED (with
`context.ok`): a random request can never be allowed, whatever it carries, so any ALLOW for
one is a fail-open bug. "Invalid" requests are built from ALLOWED plus one defect Cedar or
pdp refuses (MALFORMED): they must never be decided at all. After each run the process must
still be alive and SERVING. (Check is fuzzed in test_fuzz_check.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.hardening import (
    ALLOWED,
    FUZZ,
    TIMEOUT,
    allowed_request,
    assert_alive_and_serving,
    guarded_bundle,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.xdist_group("hardening-fuzz")

REFUSED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}

# --- building blocks ---------------------------------------------------------------------

ODD = [
    "",
    " ",
    '"',
    "'",
    "\\",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "\u200b",
    "\u202e",
    "\ufeff",
    "é",
    "\U0001d54f",
    "\U0001f642",
    '"; forbid',
    'alice"',
    'User::"alice"',
    "alice\n",
    "../",
    "%00",
    "*",
    "a" * 1024,
    "a" * 1025,
]
ids = st.one_of(
    st.text(max_size=30),
    st.sampled_from(ODD),
    st.text(alphabet='ab"\\\n', min_size=1020, max_size=1030),
)
types = st.one_of(
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}(::[A-Za-z_][A-Za-z0-9_]{0,5}){0,2}\Z"),
    st.sampled_from(["User", "Action", "Doc", "", "1A", "User::", "a b", 'Action::"read"']),
    st.text(max_size=12),
)
uids = st.builds(lambda t, i: pb.EntityUid(type=t, id=i), types, ids)

scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(ODD),
    st.none(),
)


def _compound(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    functions = st.sampled_from(["ip", "decimal", "datetime", "duration", "nope", ""])
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        st.builds(lambda v: {"__entity": v}, children),
        st.builds(lambda v: {"__extn": v}, children),
        st.builds(lambda t, i: {"__entity": {"type": t, "id": i}}, types, ids),
        st.builds(lambda f, a: {"__extn": {"fn": f, "arg": a}}, functions, children),
    )


values = st.recursive(scalars, _compound, max_leaves=12)
records = st.dictionaries(st.text(max_size=8), values, max_size=5)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _truncated(text: str, cut: int) -> str:
    return text[: cut % (len(text) + 1)]


json_texts = st.one_of(
    records.map(lambda r: json.dumps(r)),  # NaN and Infinity are not JSON: refused
    st.builds(_truncated, records.map(json.dumps), st.integers(0, 10_000)),
    st.text(max_size=40),
    st.integers(1, 5000).map(lambda n: '{"x": ' + "[" * n + "]" * n + "}"),
    st.integers(1, 50).map(lambda n: json.dumps({"x": nested(n)})),
    st.sampled_from(["", "null", "[]", "{}", "[1]", '"x"', "{", '{"a": 1}}', "\x00"]),
)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


structs = st.one_of(
    records.map(struct),
    # Up to our depth limit; deeper still, protobuf refuses to parse (see test_limits).
    st.integers(1, 30).map(lambda n: struct({"x": nested(n)})),
)
proto_entities = st.lists(
    st.builds(
        lambda uid, attrs, parents: pb.Entity(uid=uid, attrs=attrs, parents=parents),
        uids,
        structs,
        st.lists(uids, max_size=3),
    ),
    max_size=3,
)
entity_dicts = st.fixed_dictionaries(
    {
        "uid": st.one_of(
            st.builds(lambda t, i: {"type": t, "id": i}, types, ids),
            values,
        ),
        "attrs": st.one_of(records, values),
        "parents": st.one_of(
            st.lists(st.builds(lambda t, i: {"type": t, "id": i}, types, ids), max_size=3),
            values,
        ),
    }
)
entity_texts = st.one_of(
    st.lists(entity_dicts, max_size=4).map(json.dumps),
    json_texts,
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),
    st.integers(50, 200).map(
        lambda n: json.dumps(  # chains of groups, from well within to twice the hierarchy limit
            [
                {
                    "uid": {"type": "G", "id": f"g{i}"},
                    "attrs": {},
                    "parents": [{"type": "G", "id": f"g{i + 1}"}],
                }
                for i in range(n)
            ]
        )
    ),
)


_TRIPLE = ("principal", "action", "resource")


def _is_allowed_triple(message: pb.IsAuthorizedRequest) -> bool:
    triple = tuple((getattr(message, n).type, getattr(message, n).id) for n in _TRIPLE)
    return triple == ALLOWED


@st.composite
def random_requests(draw: st.DrawFn) -> pb.IsAuthorizedRequest:
    """Any request at all, except the one triple the bundle can allow."""
    message = pb.IsAuthorizedRequest()
    for name in _TRIPLE:
        if draw(st.integers(0, 9)):  # now and then a field is missing
            getattr(message, name).CopyFrom(draw(uids))
    context = draw(st.sampled_from(["none", "struct", "json", "both"]))
    if context in ("struct", "both"):
        message.context.CopyFrom(draw(structs))
    if context in ("json", "both"):
        message.context_json = draw(json_texts)
    entities = draw(st.sampled_from(["none", "proto", "json", "both"]))
    if entities in ("proto", "both"):
        message.entities.extend(draw(proto_entities))
    if entities in ("json", "both"):
        message.entities_json = draw(entity_texts)
    if _is_allowed_triple(message):
        message.resource.id += "-not"
    return message


# The allowed triple with one defect pdp or Cedar refuses; each must be refused, not decided.
MALFORMED: dict[str, dict[str, Any]] = {
    "both context forms": {"context": struct({"ok": True}), "context_json": '{"ok": true}'},
    "context_json not JSON": {"context_json": '{"ok": true'},
    "context_json trailing text": {"context_json": '{"ok": true} x'},
    "context_json a list": {"context_json": '[{"ok": true}]'},
    "a null in context_json": {"context_json": '{"ok": true, "x": null}'},
    "a fraction in context_json": {"context_json": '{"ok": true, "x": 1.5}'},
    "a fraction in context": {"context": struct({"ok": True, "x": 1.5})},
    "a null in context": {"context": struct({"ok": True, "x": None})},
    "an unknown extension": {
        "context_json": '{"ok": true, "x": {"__extn": {"fn": "nope", "arg": "1"}}}'
    },
    "a bad ip": {"context_json": '{"ok": true, "x": {"__extn": {"fn": "ip", "arg": "nope"}}}'},
    "beyond a Long": {"context_json": '{"ok": true, "x": 99999999999999999999}'},
    "entities_json not JSON": {"entities_json": "[{"},
    "entity uid not a uid": {
        "entities_json": '[{"uid": {"__entity": 5}, "attrs": {}, "parents": []}]'
    },
    "entity without attrs": {"entities_json": '[{"uid": {"type": "G", "id": "g"}}]'},
    "entity cycle": {
        "entities_json": json.dumps(
            [
                {
                    "uid": {"type": "G", "id": "a"},
                    "attrs": {},
                    "parents": [{"type": "G", "id": "b"}],
                },
                {
                    "uid": {"type": "G", "id": "b"},
                    "attrs": {},
                    "parents": [{"type": "G", "id": "a"}],
                },
            ]
        )
    },
    "alice rewritten": {
        "entities_json": json.dumps(
            [{"uid": {"type": "User", "id": "alice"}, "attrs": {"name": "M"}, "parents": []}]
        )
    },
    "entity with an empty type": {"entities": [pb.Entity(uid=pb.EntityUid(type="", id="g"))]},
    "both entity forms": {
        "entities": [pb.Entity(uid=pb.EntityUid(type="G", id="g"))],
        "entities_json": "[]",
    },
    "context too deep": {"context_json": json.dumps({"ok": True, "x": nested(40)})},
    "id too long": {
        "entities_json": json.dumps(
            [{"uid": {"type": "G", "id": "g" * 2000}, "attrs": {}, "parents": []}]
        )
    },
}
malformed = st.sampled_from(sorted(MALFORMED)).map(lambda name: allowed_request(**MALFORMED[name]))


# --- servers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    bundle = guarded_bundle(tmp_path_factory.mktemp("fuzz") / "bundle")
    with ServerProcess(bundle, "--decision-log", "off") as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.AuthorizerStub]:
    assert server.address is not None
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.AuthorizerStub(channel)


def answer(stub: pb_grpc.AuthorizerStub, message: Any) -> tuple[grpc.StatusCode, Any]:
    try:
        return grpc.StatusCode.OK, stub.IsAuthorized(message, timeout=TIMEOUT)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def test_the_valid_request_is_allowed_and_each_defect_refused(stub: pb_grpc.AuthorizerStub) -> None:
    """The oracle is not vacuous: ALLOWED is allowed, and every MALFORMED variant refused."""
    code, response = answer(stub, allowed_request())
    assert code == grpc.StatusCode.OK and response.decision == pb.DECISION_ALLOW
    for name, fields in MALFORMED.items():
        code, details = answer(stub, allowed_request(**fields))
        assert code in REFUSED, (name, code, details)


def test_random_requests_are_never_allowed_and_never_crash(
    server: ServerProcess, stub: pb_grpc.AuthorizerStub
) -> None:
    @FUZZ
    @given(st.one_of(random_requests(), malformed))
    def run(message: pb.IsAuthorizedRequest) -> None:
        code, response = answer(stub, message)
        assert code == grpc.StatusCode.OK or code in REFUSED, (code, response)
        if code == grpc.StatusCode.OK:
            assert response.decision == pb.DECISION_DENY, message
            assert not _is_allowed_triple(message)

    run()
    assert_alive_and_serving(server)


def _as_plan(message: pb.IsAuthorizedRequest) -> pb.PlanResourcesRequest:
    """The same question with the resource left open: its type only."""
    plan = pb.PlanResourcesRequest(resource_type=message.resource.type)
    for name in ("principal", "action", "context"):
        if message.HasField(name):
            getattr(plan, name).CopyFrom(getattr(message, name))
    plan.entities.extend(message.entities)
    plan.context_json = message.context_json
    plan.entities_json = message.entities_json
    return plan


def test_random_plans_never_allow_and_never_crash(
    server: ServerProcess, stub: pb_grpc.AuthorizerStub
) -> None:
    """Only ALLOWED's principal and action on Doc may get a condition; no plan allows all."""

    @FUZZ
    @given(st.one_of(random_requests(), malformed))
    def run(message: pb.IsAuthorizedRequest) -> None:
        plan = _as_plan(message)
        try:
            response = stub.PlanResources(plan, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            assert exc.code() in REFUSED, (exc.code(), exc.details())
            return
        assert response.kind != pb.PLAN_KIND_ALWAYS_ALLOWED, plan
        if response.kind == pb.PLAN_KIND_CONDITIONAL:
            (ptype, pid), (atype, aid), (rtype, _) = ALLOWED
            assert (plan.principal.type, plan.principal.id) == (ptype, pid), plan
            assert (plan.action.type, plan.action.id, plan.resource_type) == (atype, aid, rtype)
        else:
            assert response.kind == pb.PLAN_KIND_ALWAYS_DENIED

    run()
    valid = stub.PlanResources(_as_plan(allowed_request()), timeout=TIMEOUT)  # not vacuous
    assert valid.kind == pb.PLAN_KIND_CONDITIONAL
    assert json.loads(valid.condition_json) == {
        "op": "==",
        "args": [{"var": "resource"}, {"value": {"__entity": {"type": "Doc", "id": "d1"}}}],
    }
    assert_alive_and_serving(server)


@st.composite
def batches(draw: st.DrawFn) -> tuple[pb.BatchIsAuthorizedRequest, list[str]]:
    kinds = draw(st.lists(st.sampled_from(["random", "malformed", "allowed"]), max_size=6))
    items = []
    for kind in kinds:
        if kind == "random":
            items.append(draw(random_requests()))
        elif kind == "malformed":
            items.append(draw(malformed))
        else:
            items.append(allowed_request())
    message = pb.BatchIsAuthorizedRequest(requests=items)
    shared = draw(st.sampled_from(["none", "proto", "json"]))
    if shared == "proto":
        message.entities.extend(draw(proto_entities))
    elif shared == "json":
        message.entities_json = draw(entity_texts)
    return message, kinds


def test_random_batches_answer_each_item_in_place_and_allow_only_the_valid_one(
    server: ServerProcess, stub: pb_grpc.AuthorizerStub
) -> None:
    @FUZZ
    @given(batches())
    def run(case: tuple[pb.BatchIsAuthorizedRequest, list[str]]) -> None:
        message, kinds = case
        try:
            results = stub.BatchIsAuthorized(message, timeout=TIMEOUT).results
        except grpc.RpcError as exc:  # only the batch as a whole: its shared entities
            assert exc.code() in REFUSED, (exc.code(), exc.details())
            assert exc.details().startswith("entities"), exc.details()
            return
        assert len(results) == len(kinds)
        for kind, result in zip(kinds, results, strict=True):
            if kind == "allowed":
                assert result.decision == pb.DECISION_ALLOW, result
            else:
                assert result.decision == pb.DECISION_DENY, (kind, result)
            if kind == "malformed":
                assert result.errors and result.errors[0].startswith("invalid request:")

    run()
    assert_alive_and_serving(server)
