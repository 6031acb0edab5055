"""Remembered IsAuthorized messages: a message answered again from the decision cache without
being checked or converted gives the answer, log line and metrics the uncached path gives,
across reloads; limits, deadlines and memory bounds still hold. Real bundles, Cedar, hypothesis."""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.bundle import CompiledBundle
from pdp.decisioncache import (
    MESSAGE_MAX_BYTES,
    DecisionCache,
    message_scope,
    renewed,
)
from pdp.decisionlog import DecisionLog, Recorder
from pdp.decisionlog.sink import open_sink
from pdp.errors import DeadlineExceeded, LimitExceeded, PdpError
from pdp.live.store import BundleStore
from pdp.model import Decision
from pdp.server.calls import Calls
from pdp.server.limits import Limits
from pdp.v1 import authorizer_pb2 as pb
from tests.engine.test_decision_cache import POLICIES, VARIANT, entity, make_bundle
from tests.support.memory import deep_size


@pytest.fixture(scope="module")
def bundles() -> list[CompiledBundle]:
    """Three bundles: two with the same manifest revision and different policies."""
    with tempfile.TemporaryDirectory() as tmp:
        return [
            make_bundle(Path(tmp) / "a", POLICIES, "r1"),
            make_bundle(Path(tmp) / "b", VARIANT, "r1"),
            make_bundle(Path(tmp) / "c", VARIANT, "r2"),
        ]


class Side:
    """One Calls over its own store, with a decision log drained by hand and a hit counter."""

    def __init__(self, tmp: Path, name: str, size: int, limits: Limits | None = None) -> None:
        self.store = BundleStore()
        self.seen: list[bool] = []
        self.cache = DecisionCache(size, self.seen.append)
        self.store.subscribe(self.cache.status_listener)
        sink = open_sink(str(tmp / f"{name}.jsonl"))
        assert sink is not None
        sink.open()
        self.path = tmp / f"{name}.jsonl"
        self.log = DecisionLog(sink)  # no writer thread: drained by the test
        self.calls = Calls(self.store, limits or Limits(), Recorder(self.log), self.cache)

    def ask(self, message: pb.IsAuthorizedRequest, remaining: float | None = None) -> Any:
        try:
            d = self.calls.is_authorized(message, remaining)
        except PdpError as exc:
            return ("error", type(exc).__name__, str(exc))
        return (d.allowed, d.determining_policies, d.erroring_policies, d.errors,
                d.bundle_revision, d.malformed)  # fmt: skip

    def lines(self) -> list[dict[str, Any]]:
        self.log._drain()
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def comparable(line: dict[str, Any]) -> dict[str, Any]:
    """A log line without what differs between two answers: the id, time and latency."""
    return {k: v for k, v in line.items() if k not in ("decision_id", "time", "latency_us")}


users = st.sampled_from(["alice", "bob", "root", 'a"b', "\u00e9"])
context_texts = st.sampled_from(['{"level":1}', '{"level":"1"}', '{"level":1,"level":2}', "{"])
own_entities = st.sampled_from(
    [
        "",
        json.dumps([entity("User", "bob", {"blocked": True})]),
        json.dumps([entity("User", "bob", {}, ("Group", "admins"))]),
        json.dumps([entity("Doc", "d1", {})]),  # conflicts with the bundle's d1
        "[",
    ]
)


@st.composite
def messages(draw: st.DrawFn) -> pb.IsAuthorizedRequest:
    message = pb.IsAuthorizedRequest(entities_json=draw(own_entities))
    message.principal.type, message.principal.id = "User", draw(users)
    if draw(st.booleans()):  # else: missing, a refusal naming the field
        message.action.type, message.action.id = "Action", draw(st.sampled_from(["read", "write"]))
    message.resource.type, message.resource.id = "Doc", draw(st.sampled_from(["d1", "d2"]))
    how = draw(st.sampled_from(["none", "text", "struct", "both"]))
    if how in ("text", "both"):
        message.context_json = draw(context_texts)
    if how in ("struct", "both"):
        message.context.update({"level": draw(st.sampled_from([1, 1.5, "1", True]))})
    return message


steps = st.lists(st.one_of(messages(), st.sampled_from([0, 1, 2])), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_remembered_messages_answer_as_uncached_calls_across_reloads(
    bundles: list[CompiledBundle], steps: list[Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cold = Side(Path(tmp), "cold", 0)
        warm = Side(Path(tmp), "warm", 8)
        for side in (cold, warm):
            side.store.activate(bundles[0])
        asked: list[pb.IsAuthorizedRequest] = []
        for step in steps:
            if isinstance(step, int):  # a reload: nothing remembered survives another bundle
                for side in (cold, warm):
                    side.store.activate(bundles[step])
                continue
            for message in (step, *asked[-3:], step):
                again = pb.IsAuthorizedRequest.FromString(message.SerializeToString())
                counted = len(warm.seen)
                assert warm.ask(again) == cold.ask(message)
                assert len(warm.seen) - counted in (0, 1)  # a call counts once, if at all
            asked.append(step)
        cold_lines, warm_lines = cold.lines(), warm.lines()
        assert len(warm_lines) == len(cold_lines)
        for plain, cached in zip(cold_lines, warm_lines, strict=True):
            assert comparable({**cached, "cached": False}) == comparable({**plain, "cached": False})
            assert "cached" not in plain
        # every call that decided counted exactly once (a hit or a miss); refusals at most once
        assert len(warm_lines) <= warm.cache.hits + warm.cache.misses == len(warm.seen)
        assert len({line["decision_id"] for line in warm_lines}) == len(warm_lines)


def message(user: str = "root", entities_json: str = "") -> pb.IsAuthorizedRequest:
    m = pb.IsAuthorizedRequest(entities_json=entities_json)
    m.principal.type, m.principal.id = "User", user
    m.action.type, m.action.id = "Action", "read"
    m.resource.type, m.resource.id = "Doc", "d2"
    return m


def test_a_remembered_message_is_answered_without_conversion_marked_cached(
    bundles: list[CompiledBundle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = Side(tmp_path, "w", 10)
    side.store.activate(bundles[0])
    first = side.calls.is_authorized(message())
    second = side.calls.is_authorized(message())  # a normal hit: now remembered as a message
    from pdp.server import calls as calls_module

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(calls_module.convert, "authz_request", refuse)
    monkeypatch.setattr(calls_module, "check_request", refuse)
    third = side.calls.is_authorized(message())
    assert not first.cached and second.cached and third.cached
    assert len({first.decision_id, second.decision_id, third.decision_id}) == 3
    assert third.allowed and third.determining_policies == ("admin",)
    assert (side.cache.hits, side.cache.misses) == (2, 1)
    lines = side.lines()
    assert [line.get("cached", False) for line in lines] == [False, True, True]
    assert lines[2]["principal"] == 'User::"root"'
    # the deadline is still checked for a remembered message
    with pytest.raises(DeadlineExceeded):
        side.calls.is_authorized(message(), 0.0)
    # another bundle: nothing remembered is used, the message is checked and converted again
    side.store.activate(bundles[1])
    with pytest.raises(AssertionError, match="converted again"):
        side.calls.is_authorized(message())


def test_a_message_remembered_under_looser_limits_is_still_refused_by_tighter_ones(
    bundles: list[CompiledBundle], tmp_path: Path
) -> None:
    loose = Side(tmp_path, "loose", 10)
    loose.store.activate(bundles[0])
    text = json.dumps([entity("User", "root", {}, ("Group", "admins"))])
    for _ in range(2):
        assert loose.calls.is_authorized(message(entities_json=text)).allowed
    tight = Calls(loose.store, Limits(max_id_length=3), Recorder(), loose.cache)  # shared cache
    with pytest.raises(LimitExceeded):
        tight.is_authorized(message(entities_json=text))
    assert message_scope("x", Limits()) != message_scope("x", Limits(max_id_length=3))


def test_remembered_messages_are_bounded_in_size_and_bytes(
    bundles: list[CompiledBundle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = Side(tmp_path, "b", 10)
    side.store.activate(bundles[0])
    big = message(entities_json=json.dumps([entity("Doc", f"x{i}", {}) for i in range(400)]))
    assert big.ByteSize() > MESSAGE_MAX_BYTES
    key = side.cache.message_key(bundles[0], b"", big.SerializeToString())
    assert key is None  # too large to remember: decided through the normal cache
    for _ in range(2):
        side.calls.is_authorized(big)
    assert side.cache.hits == 1  # the normal cache's
    side.calls.is_authorized(message("u0"))
    one = side.cache._messages.held  # the memory one remembered message holds (`footprint`)
    assert one > message().ByteSize()
    monkeypatch.setattr("pdp.decisioncache.MESSAGES_MAX_BYTES", 3 * one)
    for user in ("u1", "u2", "u3", "u4", "u5"):
        for _ in range(2):
            side.calls.is_authorized(message(user))
    assert len(side.cache._messages) == 3
    assert side.cache._messages.held == 3 * one


def test_a_renewed_decision_keeps_every_field_but_the_id() -> None:
    values: dict[str, Any] = {}
    for f in fields(Decision):  # a distinct, non-default value for every field, present or future
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        values[f.name] = (
            True if kind == "bool" else (f"{f.name}-x",) if kind.startswith("tuple") else f.name
        )
    values["cached"] = False
    original = Decision(**values)
    again = renewed(original)
    assert again == replace(original, decision_id=again.decision_id, cached=True)
    assert again.decision_id != original.decision_id and again.cached


def nested_message(user: str) -> pb.IsAuthorizedRequest:
    """A message just under MESSAGE_MAX_BYTES whose context is a list of empty lists: 4
    serialized bytes an item, a Python list (56 bytes and a pointer) each once converted."""
    m = message(user)
    items = m.context.fields["items"].list_value
    items.values.add().list_value.SetInParent()
    for _ in range((MESSAGE_MAX_BYTES - m.ByteSize()) // 4 - 8):  # lengths grow by a byte or 2
        items.values.add().list_value.SetInParent()
    assert MESSAGE_MAX_BYTES - 64 < m.ByteSize() <= MESSAGE_MAX_BYTES
    return m


def test_remembered_messages_bound_the_memory_they_hold_not_only_their_bytes(
    bundles: list[CompiledBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 1024 * 1024
    monkeypatch.setattr("pdp.decisioncache.MESSAGES_MAX_BYTES", bound)
    store = BundleStore()
    cache = DecisionCache(10_000)
    store.subscribe(cache.status_listener)
    store.activate(bundles[0])
    calls = Calls(store, Limits(), Recorder(), cache)
    asked = [nested_message(f"u{i}") for i in range(12)]  # ~3 MiB once converted: over it
    for m in asked:
        assert not calls.is_authorized(m).cached
    assert cache._messages  # some are remembered ...
    assert cache._messages.held <= bound
    held = deep_size(cache._messages)  # ... and what they hold in memory stays in the bound
    assert held <= bound, f"{held / 2**20:.1f} MiB held for a {bound / 2**20:g} MiB bound"
    raw = asked[-1].SerializeToString(deterministic=True)
    last = cache.message_key(bundles[0], calls._scope, raw)
    assert last is not None and cache.recall(bundles[0], last) is not None  # the latest is kept
