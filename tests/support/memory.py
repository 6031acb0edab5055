"""What a structure holds in memory, measured apart from the code that bounds it."""

from __future__ import annotations

import gc
import sys
import time
import types

from pdp.decisionlog import Record
from pdp.model import AuthzRequest, Decision, EntityRef

_SHARED = (None, True, False)  # one object each for the whole interpreter: held by nothing


def deep_size(root: object) -> int:
    """The bytes of every object reachable from `root` (each once; classes, modules, None,
    True and False not)."""
    seen: set[int] = {id(obj) for obj in _SHARED}
    stack, total = [root], 0
    while stack:
        node = stack.pop()
        if id(node) in seen or isinstance(node, type | types.ModuleType):
            continue
        seen.add(id(node))
        total += sys.getsizeof(node)
        stack.extend(gc.get_referents(node))
        if type(node) is dict:  # a dict of str keys does not report its keys to the gc
            stack.extend(node)
    return total


def heavy_record(n: int, text: int, error: int) -> Record:
    """A decision log record holding `text` characters of request entities and an error of
    `error` characters quoting the request (as Cedar's message for `decimal("...")` does)."""
    request = AuthzRequest(
        EntityRef("User", f"u{n}"),
        EntityRef("Action", "read"),
        EntityRef("Doc", str(n)),
        entities_json="x" * text + str(n),
    )
    errors = (f"error while evaluating policy `amount`: {'y' * error}{n}",) if error else ()
    decision = Decision(False, (), ("amount",) if error else (), errors, f"id-{n}", "r1")
    return Record("IsAuthorized", time.time(), 0.0001, None, (decision,), (request,))
