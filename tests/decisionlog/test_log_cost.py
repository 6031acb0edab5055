"""The decision log's cheap paths write exactly what the general one writes.

A plain decision's line is formatted directly (`entry._plain_line`) and every line is
encoded by a C encoder built once (`entry._encode`); both must give the bytes the general
path (`build_entry` + `json.dumps`) gives, for any text a request or Cedar can put in a line
(quotes, control characters, non-ASCII, lone surrogates, credential-shaped errors).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.bundle.manifest import LogRules
from pdp.decisionlog import DecisionLog, Record, Sink
from pdp.decisionlog.entry import (
    ACCESS_EVALUATION,
    ACCESS_EVALUATIONS,
    BATCH_IS_AUTHORIZED,
    FORWARD_AUTH,
    IS_AUTHORIZED,
    MAX_LINE_BYTES,
    _encode,
    generic_line,
    line,
)
from pdp.decisionlog.masking import Masker
from pdp.metrics import Metrics
from pdp.model import AuthzRequest, Decision, EntityRef

# Any code point, lone surrogates included (hypothesis leaves those out by default).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
SECRETISH = st.sampled_from(["", "Bearer abc.def", "eyJhbGciOi.eyJzdWIi.sig", 'a "quoted" \\ \n'])
WORDS = st.lists(st.one_of(TEXT, SECRETISH), max_size=3).map(tuple)
APIS = st.sampled_from(
    [IS_AUTHORIZED, BATCH_IS_AUTHORIZED, ACCESS_EVALUATION, ACCESS_EVALUATIONS, FORWARD_AUTH]
)


@st.composite
def decisions(draw: st.DrawFn) -> Decision:
    return Decision(
        allowed=draw(st.booleans()),
        determining_policies=draw(WORDS),
        erroring_policies=draw(WORDS),
        errors=draw(WORDS),
        decision_id=draw(st.one_of(TEXT, st.just("0b7c2f1e-6a1d-4c55-9b7e-1d2c3b4a5f60"))),
        bundle_revision=draw(st.one_of(st.just(""), TEXT)),
        malformed=draw(st.booleans()),
        cached=draw(st.booleans()),
    )


@st.composite
def requests(draw: st.DrawFn) -> AuthzRequest | None:
    if draw(st.integers(0, 4)) == 0:
        return None  # a malformed batch item
    refs = [EntityRef(draw(TEXT), draw(TEXT)) for _ in range(3)]
    return AuthzRequest(*refs)


@st.composite
def records(draw: st.DrawFn) -> Record:
    count = draw(st.integers(1, 3))
    bundle = draw(st.one_of(st.none(), TEXT.map(lambda name: SimpleNamespace(name=name))))
    return Record(
        draw(APIS),
        draw(st.floats(0, 4e9)),
        draw(st.floats(0, 100)),
        bundle,  # type: ignore[arg-type]  # a line reads only the bundle's name
        [draw(decisions()) for _ in range(count)],
        [draw(requests()) for _ in range(draw(st.integers(0, count)))],
    )


@settings(max_examples=150, deadline=None)
@given(records(), st.booleans())
def test_plain_lines_are_the_general_lines(record: Record, mask_secrets: bool) -> None:
    rules = LogRules(mask_secrets=mask_secrets)
    masker = Masker(rules)
    for index in record.logged:
        fast = line(record, index, masker, rules)
        assert fast == generic_line(record, index, masker, rules)
        assert fast.endswith(b"\n") and fast.count(b"\n") == 1
        json.loads(fast)  # one whole JSON document


def test_an_over_long_plain_line_is_truncated_as_before() -> None:
    decision = Decision(False, (), (), ("x" * MAX_LINE_BYTES,), "id-1", "r1")
    request = AuthzRequest(EntityRef("User", "a"), EntityRef("Action", "r"), EntityRef("D", "1"))
    record = Record(IS_AUTHORIZED, time.time(), 0.001, None, (decision,), (request,))
    rules = LogRules()
    written = line(record, 0, Masker(rules), rules)
    assert written == generic_line(record, 0, Masker(rules), rules)
    entry = json.loads(written)
    assert entry["truncated"] is True and "errors" not in entry
    assert len(written) <= MAX_LINE_BYTES


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        TEXT,
        st.builds(lambda n: {n}, st.integers()),  # not JSON: written as str(value)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(TEXT, inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(TEXT, JSON_VALUES, max_size=6))
def test_the_prebuilt_encoder_writes_what_json_dumps_writes(entry: dict[str, Any]) -> None:
    expected = json.dumps(entry, separators=(",", ":"), default=str).encode("ascii") + b"\n"
    assert _encode(entry) == expected


class Counted(Metrics):
    def __init__(self) -> None:
        self.written = 0
        self.dropped: dict[str, int] = {}

    def log_written(self, count: int = 1) -> None:
        self.written += count

    def log_dropped(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


def test_an_entry_that_cannot_be_encoded_is_dropped_alone(tmp_path: Path) -> None:
    """The encoder checks no cycles; a cyclic entry (a bug, never a request) still ends in an
    error that drops its line only, counted, and the writer goes on."""
    path = tmp_path / "decisions.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    metrics = Counted()
    log = DecisionLog(Sink("file", fd=fd), metrics=metrics)
    request = AuthzRequest(EntityRef("User", "a"), EntityRef("Action", "r"), EntityRef("D", "1"))
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic

    def record(n: int, shadow: dict[str, Any] | None = None) -> Record:
        decision = Decision(True, ("p",), (), (), f"id-{n}", "r1")
        return Record(
            IS_AUTHORIZED,
            time.time(),
            0.001,
            None,
            (decision,),
            (request,),
            shadow=None if shadow is None else [shadow],
        )

    for item in (record(1), record(2, cyclic), record(3), record(4, {"decision": "deny"})):
        log.submit(item)
    assert log._drain() is True
    os.close(fd)
    written = [json.loads(text) for text in path.read_text().splitlines()]
    assert [entry["decision_id"] for entry in written] == ["id-1", "id-3", "id-4"]
    assert written[2]["shadow"] == {"decision": "deny"}
    assert metrics.dropped == {"write_error": 1} and metrics.written == 3
    assert log._pending == 0
