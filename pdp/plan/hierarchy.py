"""The hierarchy a plan folds in: ancestors and descendants over bundle and request entities."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pdp.model import Uid, uid_of

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle


class _Links:
    """Parent links of a set of entities, and their inverse."""

    def __init__(self) -> None:
        self.parents: dict[Uid, set[Uid]] = {}
        self.children: dict[Uid, set[Uid]] = {}

    def add(self, child: Uid, parents: Iterable[Uid]) -> None:
        ups = self.parents.setdefault(child, set())
        for parent in parents:
            ups.add(parent)
            self.children.setdefault(parent, set()).add(child)


def _links_of(items: Any) -> _Links:
    links = _Links()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        uid = uid_of(item.get("uid"))
        if uid is not None:
            parents = item.get("parents")
            found = (uid_of(p) for p in (parents if isinstance(parents, list) else []))
            links.add(uid, (p for p in found if p is not None))
    return links


_lock = threading.Lock()
_cached: tuple[CompiledBundle, _Links] | None = None  # the last bundle planned on


def _bundle_links(bundle: CompiledBundle) -> _Links:
    """The bundle's links, as Cedar renders them (parents are transitive ancestors); cached."""
    global _cached
    with _lock:
        if _cached is not None and _cached[0] is bundle:
            return _cached[1]
    links = _links_of(json.loads(str(bundle.entities)))
    with _lock:
        _cached = (bundle, links)
    return links


class Hierarchy:
    """`in` over the bundle's entities and a request's own, exactly as Cedar computes it."""

    def __init__(self, bundle: CompiledBundle, entities_json: str | None) -> None:
        self._bundle = _bundle_links(bundle)
        self._request = _links_of(json.loads(entities_json)) if entities_json else _Links()

    def ancestors(self, uid: Uid) -> set[Uid]:
        """Every ancestor of `uid` (not itself)."""
        return self._closure(uid, lambda links: links.parents)

    def descendants(self, uid: Uid) -> set[Uid]:
        """Every known descendant of `uid` (not itself)."""
        return self._closure(uid, lambda links: links.children)

    def _closure(self, start: Uid, step: Any) -> set[Uid]:
        seen: set[Uid] = set()
        frontier = [start]
        while frontier:
            current = frontier.pop()
            for links in (self._bundle, self._request):
                for found in step(links).get(current, ()):
                    if found not in seen and found != start:
                        seen.add(found)
                        frontier.append(found)
        return seen
