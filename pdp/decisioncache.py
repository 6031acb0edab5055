"""An exact decision cache: a bounded LRU of decisions keyed by bundle and request digest.

A decision is a pure function of the bundle and the request (principal, action, resource,
context, request entities): Cedar has no clock and no I/O. So a decision made once can be
answered again, with a new decision id, without calling Cedar, for as long as the same
bundle is active.

The key is SHA-256 over an injective encoding of everything the decision depends on: the
bundle's content digest and revision, each uid's type and id, the context (exact text as
sent, or the canonical JSON of a structured context: sorted keys, `1`, `1.0`, `"1"` and
`true` all distinct) and the request entities' exact text (batch-shared entities apart from
the item's own). The fields are one JSON array (strings escaped, so no field's text can
move into another's), so two different requests never encode alike; a collision would be a
SHA-256 collision. A request that cannot be encoded exactly (a structured context holding
anything but JSON values with string keys) is decided and never cached. Errors (malformed
requests) are never cached: they are raised again.

Messages: a whole `IsAuthorized` message answered before (the same protobuf serialization,
under the same limits) is answered again from its remembered request and decision without
being checked, converted or encoded again (`message_key`, `recall`); the caller still
checks the call's deadline. Remembered messages are bounded in count, in serialized bytes
each, and in all by the memory their converted requests and decisions hold (`footprint`: a
16 KiB message of empty lists holds ~16 times its size once converted).

Decisions are bounded in count (`size`) and in all by the memory they hold
(`decision_footprint`): a decision's errors may quote the request's own text (Cedar's
message for `decimal("...")` holds the string), so distinct hostile requests could otherwise
make 10,000 entries of tens of KB each. A decision alone over the whole bound is not kept.

The cache holds decisions of one bundle only: `activate(bundle)` (a store listener) clears
it, and a call still deciding on an older bundle bypasses it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pdp import engine
from pdp.memsize import decision_bytes, request_bytes
from pdp.model import AuthzRequest, Decision

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle

DEFAULT_SIZE = 10_000
_SCHEME = "pdp-decision-cache-v2"
_MESSAGE_SCHEME = b"pdp-decision-cache-message-v1"
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
# The key's encoder: as _CANONICAL, but strings written as they are (ensure_ascii would write
# a non-BMP character and its two lone surrogates alike); encoded with surrogatepass.
_KEY = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_NONE, _TEXT, _VALUE = "n", "t", "v"
# Remembered messages: each at most this many serialized bytes; all together, at most this
# many bytes of memory held (`footprint`).
MESSAGE_MAX_BYTES = 16 * 1024
MESSAGES_MAX_BYTES = 16 * 1024 * 1024
# Decisions: all together, at most this many bytes of memory held (`decision_footprint`).
DECISIONS_MAX_BYTES = 32 * 1024 * 1024
# What one remembered message costs besides its request and decision: its key, the entry's
# tuple and size, the ordered dict's slot and link.
_ENTRY_BYTES = 256

# Called once per lookup: True for a hit, False for a miss (a metrics counter).
Observer = Callable[[bool], None]


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def canonical_value(value: Any) -> str | None:
    """The canonical JSON of a structured Cedar JSON value, None when it has no exact one
    (a non-string key, a float that is not finite, anything JSON cannot hold)."""
    try:
        text = _CANONICAL.encode(value)  # first: it refuses cycles and non-finite floats
    except (TypeError, ValueError, RecursionError):
        return None
    return text if _plain(value) else None


def _plain(value: Any) -> bool:
    """Only dicts with str keys, lists, str, int, float, bool and None, all the way down:
    then json's encoding is exact (no `1` key turned into `"1"`, no set, no object)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            if not all(type(key) is str for key in node):
                return False
            stack.extend(node.values())
        elif kind is list or kind is tuple:
            stack.extend(node)
        elif kind not in (str, int, float, bool) and node is not None:
            return False
    return True


def request_digest(
    bundle: CompiledBundle, request: AuthzRequest, shared_entities: str | None = None
) -> bytes | None:
    """The cache key of `request` on `bundle`; None when it cannot be encoded exactly."""
    principal, action, resource = request.principal, request.action, request.resource
    if principal is None or action is None or resource is None:
        return None  # malformed: the engine says so
    context, text = request.context, request.context_json
    value: Any
    if text is not None:
        if context is not None:
            return None  # malformed: the engine says so
        kind, value = _TEXT, text
    elif context is not None:
        kind, value = _VALUE, context
    else:
        kind, value = _NONE, None
    try:  # first: the encoder refuses cycles, non-finite floats and what JSON cannot hold
        encoded = _KEY.encode(
            (
                _SCHEME,
                bundle.source.digest,
                bundle.revision,
                principal.type,
                principal.id,
                action.type,
                action.id,
                resource.type,
                resource.id,
                kind,
                value,
                shared_entities,
                request.entities_json,
            )
        )
    except (TypeError, ValueError, RecursionError):
        return None
    if kind is _VALUE and not _plain(context):
        return None
    # surrogatepass: any Python str encodes, and distinct strs encode distinctly
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).digest()


def message_scope(kind: str, limits: object) -> bytes:
    """What a message key is scoped by besides the bundle: the message type, and the limits
    it was checked against (their repr: a frozen dataclass's names every field)."""
    return _field(kind.encode()) + _field(repr(limits).encode("utf-8", "surrogatepass"))


def decision_footprint(decision: Decision) -> int:
    """About the bytes of memory a cached decision holds with its entry (errs high)."""
    return _ENTRY_BYTES + decision_bytes(decision)


def footprint(request: AuthzRequest, decision: Decision) -> int:
    """About the bytes of memory a remembered request and decision hold (errs high)."""
    return decision_footprint(decision) + request_bytes(request)


def renewed(decision: Decision) -> Decision:
    """`decision` answered again: a new decision id, marked cached, every other field kept
    (what `dataclasses.replace` returns, without its cost; tests hold the two together)."""
    return Decision(
        decision.allowed,
        decision.determining_policies,
        decision.erroring_policies,
        decision.errors,
        engine.new_decision_id(),
        decision.bundle_revision,
        decision.malformed,
        True,
    )


V = TypeVar("V")


class _Lru(Generic[V]):
    """Values by key, least recently used first, each with the bytes it holds; the caller
    holds the lock."""

    __slots__ = ("entries", "held")

    def __init__(self) -> None:
        self.entries: OrderedDict[bytes, tuple[V, int]] = OrderedDict()
        self.held = 0  # bytes, the sum of the entries' sizes

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()
        self.held = 0

    def get(self, key: bytes) -> V | None:
        found = self.entries.get(key)
        if found is None:
            return None
        self.entries.move_to_end(key)
        return found[0]

    def put(self, key: bytes, value: V, size: int, count: int, max_bytes: int) -> None:
        """Keep `value`, then drop the least recently used over `count` or `max_bytes`."""
        entries = self.entries
        old = entries.pop(key, None)
        if old is not None:
            self.held -= old[1]
        entries[key] = (value, size)
        self.held += size
        while len(entries) > count or self.held > max_bytes:
            self.held -= entries.popitem(last=False)[1][1]


class DecisionCache:
    """A bounded LRU of decisions of the active bundle; thread-safe.

    `size` entries at most (0 disables the cache: every call decides). `observe` hears
    every lookup (hit or miss); `hits` and `misses` count them too.
    """

    def __init__(self, size: int = DEFAULT_SIZE, observe: Observer | None = None) -> None:
        if size < 0:
            raise ValueError("decision cache size must be 0 or more")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._observe = observe
        self._entries: _Lru[Decision] = _Lru()  # by request key; `decision_footprint`
        self._messages: _Lru[tuple[AuthzRequest, Decision]] = _Lru()  # by message; `footprint`
        # the active bundle and its message key prefix: one tuple, read together without the lock
        self._active: tuple[CompiledBundle | None, bytes] = (None, b"")
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def activate(self, bundle: CompiledBundle | None) -> None:
        """The active bundle changed (or not): drop every decision of any other bundle."""
        with self._lock:
            if bundle is not self._active[0]:
                self._entries.clear()
                self._messages.clear()
                prefix = b""
                if bundle is not None:
                    prefix = b"".join(
                        (
                            _MESSAGE_SCHEME,
                            _field(bundle.source.digest.encode("utf-8", "surrogatepass")),
                            _field(bundle.revision.encode("utf-8", "surrogatepass")),
                        )
                    )
                self._active = (bundle, prefix)

    def status_listener(self, status: Any) -> None:
        """A BundleStore listener: `activate(status.bundle)`."""
        self.activate(status.bundle)

    def decide(
        self,
        bundle: CompiledBundle,
        request: AuthzRequest,
        message: bytes | None = None,
    ) -> Decision:
        """`engine.decide`, answered from the cache when the same request was decided on this
        bundle before; raises RequestError as the engine does. `message` (`message_key`'s
        answer for the message `request` was converted from, which passed its limits): the
        request and its decision are remembered under it for `recall`."""
        key = self._key(bundle, request, None)
        if key is None:
            return engine.decide(bundle, request)
        decision = self._get(key)
        if decision is None:
            decision = engine.decide(bundle, request)
            self._put(bundle, key, decision)
        if message is not None:
            self._remember(bundle, message, request, decision)
        return decision

    def message_key(self, bundle: CompiledBundle, scope: bytes, raw: bytes) -> bytes | None:
        """The key of a serialized message on `bundle` (`scope`: `message_scope`'s); None when
        messages are not remembered for it (cache off, another bundle than the active one, or
        over MESSAGE_MAX_BYTES)."""
        active, prefix = self._active
        if len(raw) > MESSAGE_MAX_BYTES or self.size <= 0 or active is not bundle:
            return None
        return hashlib.sha256(b"".join((prefix, scope, raw))).digest()

    def recall(
        self, bundle: CompiledBundle, message: bytes
    ) -> tuple[AuthzRequest, Decision] | None:
        """The request and decision remembered under `message` (the decision renewed: a new
        id, marked cached; counted as a hit), None when there are none (not counted: the
        call then looks its converted request up with `decide`, which counts)."""
        with self._lock:
            if bundle is not self._active[0]:
                return None
            found = self._messages.get(message)
            if found is None:
                return None
            self.hits += 1
        if self._observe is not None:
            self._observe(True)
        return found[0], renewed(found[1])

    def decide_batch(
        self,
        bundle: CompiledBundle,
        requests: Sequence[AuthzRequest],
        shared_entities_json: str | None,
        positions: Sequence[int] | None = None,
    ) -> list[Decision]:
        """`engine.decide_batch`, the items decided before answered from the cache; the rest
        decided together in one engine call."""
        if not self._usable(bundle):
            return engine.decide_batch(bundle, requests, shared_entities_json, positions)
        positions = range(len(requests)) if positions is None else positions
        results: list[Decision | None] = [None] * len(requests)
        keys: list[bytes | None] = [None] * len(requests)
        missing: list[int] = []
        for index, request in enumerate(requests):
            key = request_digest(bundle, request, shared_entities_json)
            keys[index] = key
            hit = self._get(key) if key is not None else None
            if hit is None:
                missing.append(index)
            else:
                results[index] = hit
        if missing:
            decided = engine.decide_batch(
                bundle,
                [requests[i] for i in missing],
                shared_entities_json,
                [positions[i] for i in missing],
            )
            for index, decision in zip(missing, decided, strict=True):
                results[index] = decision
                key = keys[index]
                if key is not None:
                    self._put(bundle, key, decision)
        return [r for r in results if r is not None]

    def _usable(self, bundle: CompiledBundle) -> bool:
        return self.size > 0 and bundle is self._active[0]

    def _key(
        self, bundle: CompiledBundle, request: AuthzRequest, shared: str | None
    ) -> bytes | None:
        if not self._usable(bundle):
            return None
        return request_digest(bundle, request, shared)

    def _get(self, key: bytes) -> Decision | None:
        with self._lock:
            stored = self._entries.get(key)
            if stored is not None:
                self.hits += 1
            else:
                self.misses += 1
        if self._observe is not None:
            self._observe(stored is not None)
        if stored is None:
            return None
        return renewed(stored)

    def _put(self, bundle: CompiledBundle, key: bytes, decision: Decision) -> None:
        if decision.malformed:
            return  # a refusal names where the item stood in its batch: never reused
        size = decision_footprint(decision)
        if size > DECISIONS_MAX_BYTES:
            return
        with self._lock:
            if bundle is not self._active[0]:
                return  # swapped while deciding: the decision belongs to no active bundle
            self._entries.put(key, decision, size, self.size, DECISIONS_MAX_BYTES)

    def _remember(
        self,
        bundle: CompiledBundle,
        message: bytes,
        request: AuthzRequest,
        decision: Decision,
    ) -> None:
        size = footprint(request, decision)  # outside the lock: a walk of the context
        if size > MESSAGES_MAX_BYTES:
            return
        with self._lock:
            if bundle is not self._active[0]:
                return  # swapped while deciding
            self._messages.put(message, (request, decision), size, self.size, MESSAGES_MAX_BYTES)


def disabled() -> DecisionCache:
    """A cache that never holds anything: every call decides."""
    return DecisionCache(0)
