"""The live bundle: the active snapshot (store), rebuilt on change (reload, watcher, debounce).

`pdp.bundle` reads and compiles; this package decides when, and swaps the result in.
"""

from __future__ import annotations

from typing import Protocol


class Lifecycle(Protocol):
    """A background part of the server: started once, stopped once; `stop` waits for it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...
