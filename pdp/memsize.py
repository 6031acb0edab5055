"""What requests and decisions hold in memory, erring high: the byte bounds of what keeps them.

The decision cache and the decision log's queue keep requests and decisions for a while; a
bound on their count alone is no bound on memory, since one request may carry megabytes of
context or entities and one decision's errors may quote the request (Cedar's message for
`decimal("...")` holds the text). The figures are CPython's object sizes, bounded from
above by arithmetic on lengths (about ten times cheaper than `sys.getsizeof` per object,
since this runs for every logged decision); a shared str or number is counted as often
as it occurs, a container once. tests/test_memsize.py holds every estimate at or above
what `sys.getsizeof` finds walking the objects.
"""

from __future__ import annotations

from sys import getsizeof
from typing import Any

from pdp.model import AuthzRequest, Decision, EntityRef

# Fixed sizes of the slotted dataclasses and of the empty containers (this interpreter's).
_REQUEST = getsizeof(AuthzRequest(EntityRef("", ""), EntityRef("", ""), EntityRef("", "")))
_UID = getsizeof(EntityRef("", ""))
_DECISION = getsizeof(Decision(False, (), (), (), "", ""))
_TUPLE = getsizeof(())
_ASCII = getsizeof("")  # an ASCII str: this plus one byte a character
_WIDE = getsizeof("\U0001f600") - 4 + 8  # any other str: at most this plus four a character
# A dict's table grows in steps: at most this plus _DICT_ITEM per key; a list built by
# appending over-allocates by up to an eighth plus a few slots.
_DICT, _DICT_ITEM = getsizeof({"k": 0}), 48
_LIST, _LIST_ITEM = getsizeof([]) + 48, 12
_INT, _INT_DIGIT = getsizeof(0) - 4, 4  # 30 bits a digit
_FLOAT = getsizeof(0.0)


def text_bytes(text: str) -> int:
    """At least the bytes a str holds."""
    return _ASCII + len(text) if text.isascii() else _WIDE + 4 * len(text)


def decision_bytes(decision: Decision) -> int:
    """At least the bytes a decision holds: itself, its policy ids and its errors."""
    size = _DECISION + text_bytes(decision.decision_id) + text_bytes(decision.bundle_revision)
    for texts in (decision.determining_policies, decision.erroring_policies, decision.errors):
        size += _TUPLE + 8 * len(texts)
        for text in texts:
            size += text_bytes(text)
    return size


def request_bytes(request: AuthzRequest) -> int:
    """At least the bytes a request holds: its uids, its texts and its structured context."""
    size = _REQUEST
    for uid in (request.principal, request.action, request.resource):
        if uid is not None:
            size += _UID + text_bytes(uid.type) + text_bytes(uid.id)
    for text in (request.context_json, request.entities_json):
        if text is not None:
            size += text_bytes(text)
    context = request.context
    return size if context is None else size + value_bytes(context)


def value_bytes(value: Any) -> int:
    """At least the bytes a JSON-like value holds (dicts, lists, tuples, str, int, float,
    bool, None; anything else by `sys.getsizeof` alone), walked without recursion: a context
    may nest as deep as the limits let it. Each container is walked once, so a value that
    refers to itself (only a caller's own Python object can) ends."""
    size = 0
    stack: list[Any] = [value]
    pop, extend = stack.pop, stack.extend
    walked: set[int] = set()
    while stack:
        node = pop()
        kind = type(node)
        if kind is str:
            size += text_bytes(node)
        elif kind is dict:
            if id(node) in walked:
                continue
            walked.add(id(node))
            size += _DICT + _DICT_ITEM * len(node)
            for key in node:
                size += text_bytes(key) if type(key) is str else getsizeof(key)
            extend(node.values())
        elif kind is list or kind is tuple:
            if id(node) in walked:
                continue
            walked.add(id(node))
            size += _LIST + _LIST_ITEM * len(node)
            extend(node)
        elif kind is int:
            size += _INT + _INT_DIGIT * (node.bit_length() // 30 + 1)
        elif kind is float:
            size += _FLOAT
        elif node is not None and kind is not bool:  # None, True, False: one object each
            size += getsizeof(node)
    return size
