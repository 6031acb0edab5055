"""Decision ids are random UUIDs: unique, and nothing in one says how many came before it."""

from __future__ import annotations

import itertools
import os
import re
import uuid

from pdp.engine import new_decision_id

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _number(decision_id: str) -> int:
    return int(decision_id.replace("-", ""), 16)


def test_ids_are_version_4_uuids() -> None:
    for _ in range(2000):
        decision_id = new_decision_id()
        assert UUID4.match(decision_id), decision_id
        parsed = uuid.UUID(decision_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == decision_id


def test_ids_are_unique() -> None:
    ids = [new_decision_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


def test_consecutive_ids_share_no_counter_structure() -> None:
    """A per-process prefix plus a counter (the 0.1.0 scheme) let a client count traffic."""
    ids = [new_decision_id() for _ in range(500)]
    pairs = list(itertools.pairwise(ids))
    # 0.1.0: every id of a process shared its first 24 characters, and the rest counted up.
    assert all(a[:13] != b[:13] for a, b in pairs)
    assert all(a[-12:] != b[-12:] for a, b in pairs)
    assert not any(abs(_number(b) - _number(a)) < 2**64 for a, b in pairs)
    # Random bits: every position varies across the sample (version and variant aside).
    for position in range(36):
        if position in (8, 13, 14, 18, 19, 23):  # dashes, the version and the variant digit
            continue
        assert len({i[position] for i in ids}) > 8, position


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, just ids on the pipe
        try:
            os.write(write, "\n".join(new_decision_id() for _ in range(200)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = {new_decision_id() for _ in range(200)}
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    child = set(b"".join(chunks).decode().split("\n"))
    assert len(child) == 200 and all(UUID4.match(i) for i in child)
    assert not parent & child
