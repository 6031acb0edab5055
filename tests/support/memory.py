"""What a structure holds in memory, measured apart from the code that bounds it."""

from __future__ import annotations

import gc
import sys
import types


def deep_size(root: object) -> int:
    """The bytes of every object reachable from `root` (each once; classes and modules not)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        node = stack.pop()
        if id(node) in seen or isinstance(node, type | types.ModuleType):
            continue
        seen.add(id(node))
        total += sys.getsizeof(node)
        stack.extend(gc.get_referents(node))
    return total
