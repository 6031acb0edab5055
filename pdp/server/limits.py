"""Request limits of the listener: defaults, flags, and cheap checks made before any real work.

Every check reads raw fields (lengths, counts) before conversion or evaluation and raises
`LimitExceeded` (`RESOURCE_EXHAUSTED`) naming the field, the limit and its flag. A `_json`
text is only parsed here when counting its brackets, colons and length cannot already prove
it within the limits, so small requests pay nothing but a few `str.count` calls.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from google.protobuf import struct_pb2

from pdp.cli import argtypes
from pdp.errors import DeadlineExceeded, HttpLimitExceeded, LimitExceeded
from pdp.model import Uid, uid_parts
from pdp.routes.paths import MAX_PATH_BYTES


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one call may ask; over a bound is a clear error, never a crash."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_batch_items: int = 1000
    max_entities: int = 1000  # request entities per call (a batch: shared, and each item's)
    max_depth: int = 32  # nesting of objects and lists in context, attrs and tags
    max_id_length: int = 1024  # characters of an entity type or id
    max_string_length: int = 65536  # characters of any other string (values, keys)
    max_context_keys: int = 1000  # record keys in a context, at every level
    max_ancestors: int = 10_000  # (entity, ancestor) pairs of the request entities' hierarchy
    eval_timeout_seconds: float = 5.0  # per call; 0: only the client's deadline
    max_headers: int = 200  # Check: HTTP headers
    max_header_bytes: int = 64 * 1024  # Check: names and values of all headers
    max_path_bytes: int = 8192  # Check: the request path with its query


# Limit field -> (flag, help, accepted range); `pdp serve` builds its flags from this table.
_FLAGS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "max_entities": (
        "--max-entities",
        "request entities per call (a batch: shared, and per item)",
        argtypes.whole(1),
    ),
    "max_depth": (  # Cedar's JSON parser refuses a context nested deeper than 128 levels
        "--max-depth",
        "nesting of objects and lists in context, attrs and tags",
        argtypes.whole(1, 128),
    ),
    "max_id_length": ("--max-id-length", "characters of an entity type or id", argtypes.whole(1)),
    "max_string_length": (
        "--max-string-length",
        "characters of any other string or key",
        argtypes.whole(1),
    ),
    "max_context_keys": (
        "--max-context-keys",
        "record keys in a context, all levels",
        argtypes.whole(1),
    ),
    "max_ancestors": (
        "--max-ancestors",
        "entity-ancestor pairs of the request entities",
        argtypes.whole(1),
    ),
    "eval_timeout_seconds": (
        "--eval-timeout",
        "seconds of evaluation per call; 0: no bound",
        argtypes.seconds(0),
    ),
    "max_headers": ("--max-headers", "Check: HTTP headers per request", argtypes.whole(1)),
    "max_header_bytes": (
        "--max-header-bytes",
        "Check: bytes of all header names and values",
        argtypes.whole(1),
    ),
    "max_path_bytes": (  # never more than the normalizer reads (a flag must not promise more)
        "--max-path-bytes",
        f"Check: bytes of the path with its query, at most {MAX_PATH_BYTES}",
        argtypes.whole(1, MAX_PATH_BYTES),
    ),
}
FLAG_NAMES = {
    "max_message_bytes": "--max-message-bytes",
    "max_batch_items": "--max-batch",
    **{name: flag for name, (flag, _, _) in _FLAGS.items()},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit flags of `pdp serve` (besides --max-message-bytes and --max-batch)."""
    defaults = Limits()
    for name, (flag, text, kind) in _FLAGS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=default,
            metavar="SECONDS" if isinstance(default, float) else "N",
            help=f"{text} (default {default})",
        )


def from_args(args: argparse.Namespace) -> Limits:
    """The Limits the parsed flags ask for; defaults for flags the parser does not have."""
    values = {f.name: getattr(args, f.name) for f in fields(Limits) if hasattr(args, f.name)}
    values["max_message_bytes"] = args.max_message_bytes
    values["max_batch_items"] = args.max_batch
    return Limits(**values)


def _over(field: str, what: str, limits: Limits, name: str) -> LimitExceeded:
    """`FIELD: WHAT is over the limit of N (--flag)`."""
    limit = getattr(limits, name)
    return LimitExceeded(field, f"{what} is over the limit of {limit} ({FLAG_NAMES[name]})")


# --- pdp.v1 requests ---------------------------------------------------------------------

Parents = dict[Uid, set[Uid]]  # request entities' parent links, by child


def check_request(
    message: Any, limits: Limits, prefix: str = "", shared: Parents | None = None
) -> None:
    """Raise LimitExceeded when an IsAuthorizedRequest (or batch item) is over a limit.

    `shared` is the hierarchy of a batch's shared entities, which an item's own build on.
    """
    for name in ("principal", "action", "resource"):
        _check_uid(getattr(message, name), f"{prefix}{name}", limits)
    _check_context_and_entities(message, limits, prefix, shared)


def check_plan_request(message: Any, limits: Limits) -> None:
    """Raise LimitExceeded when a PlanResourcesRequest is over a limit."""
    for name in ("principal", "action"):
        _check_uid(getattr(message, name), name, limits)
    if len(message.resource_type) > limits.max_id_length:
        count = f"{len(message.resource_type)} characters"
        raise _over("resource_type", count, limits, "max_id_length")
    _check_context_and_entities(message, limits, "", None)


def _check_context_and_entities(
    message: Any, limits: Limits, prefix: str, shared: Parents | None
) -> None:
    if message.HasField("context"):
        _check_struct(message.context, f"{prefix}context", limits, count_keys=True)
    context_json = message.context_json
    if context_json:
        field = f"{prefix}context_json"
        document = _parse(context_json, field, limits, _context_text(context_json, limits))
        if document is not None:
            try:
                _walk_json(document, 1, limits, _Budget(limits.max_context_keys))
            except _Over as over:
                raise over.at(field, limits) from None
    entities, entities_json = message.entities, message.entities_json
    if entities or entities_json:
        check_entities(entities, entities_json, f"{prefix}entities", limits, shared)


def check_batch(message: Any, limits: Limits) -> Parents | None:
    """Raise LimitExceeded when a batch as a whole (size, shared entities) is over a limit.

    Returns the shared entities' hierarchy when items carry entities of their own.
    """
    if len(message.requests) > limits.max_batch_items:
        raise LimitExceeded(  # worded as before the other limits existed: clients match it
            "requests",
            f"{len(message.requests)} items is over the batch limit of {limits.max_batch_items}",
        )
    if not (message.entities or message.entities_json):
        return None
    own = any(item.entities or item.entities_json for item in message.requests)
    parents = check_entities(message.entities, message.entities_json, "entities", limits, None, own)
    return parents if own else None


def check_entities(
    entities: Any,
    text: str,
    field: str,
    limits: Limits,
    shared: Parents | None = None,
    hierarchy: bool = False,
) -> Parents:
    """Request entities, as a repeated Entity field or as Cedar JSON text; their hierarchy.

    The hierarchy (with `shared`'s) is bounded because Cedar computes its transitive closure
    for every request, at a cost that grows much faster than the number of links.
    """
    if len(entities) > limits.max_entities:
        raise _over(field, f"{len(entities)} entities", limits, "max_entities")
    parents: Parents = {}
    links_count = sum(len(entity.parents) for entity in entities) if entities else 0
    if links_count > limits.max_ancestors:  # every link is a pair: no need to look further
        raise _over(field, f"{links_count} parent links", limits, "max_ancestors")
    for index, entity in enumerate(entities):
        where = f"{field}[{index}]"
        _check_uid(entity.uid, f"{where}.uid", limits)
        if len(entity.parents) > limits.max_entities:
            count = f"{len(entity.parents)} parents"
            raise _over(f"{where}.parents", count, limits, "max_entities")
        for position, parent in enumerate(entity.parents):
            _check_uid(parent, f"{where}.parents[{position}]", limits)
        links = parents.setdefault((entity.uid.type, entity.uid.id), set())
        links.update((p.type, p.id) for p in entity.parents)
        if entity.HasField("attrs"):
            _check_struct(entity.attrs, f"{where}.attrs", limits)
        if entity.HasField("tags"):
            _check_struct(entity.tags, f"{where}.tags", limits)
    if text:
        field = f"{field}_json"
        cheap = _entities_text(text, limits) and shared is None and not hierarchy
        document = _parse(text, field, limits, cheap)
        if document is not None:
            try:
                _walk_entities(document, limits, parents)
            except _Over as over:
                raise over.at(field, limits) from None
    if not parents:
        return parents
    links: Mapping[Uid, set[Uid]] = ChainMap(parents, shared) if shared else parents
    if ancestor_pairs(links, limits.max_ancestors, roots=parents) > limits.max_ancestors:
        what = "the count of entity-ancestor pairs"
        raise _over(field, what, limits, "max_ancestors")
    return parents


def ancestor_pairs(
    parents: Mapping[Uid, set[Uid]], limit: int, roots: Iterable[Uid] | None = None
) -> int:
    """How many (entity, ancestor) pairs the links imply for `roots` (default: every entity)
    and their ancestors; stops counting once over `limit`.

    Iterative (no recursion limit), and a cycle ends a path instead of looping: Cedar refuses
    cycles itself. The work done is bounded by about `limit` times the largest ancestor set.
    """
    known: dict[Uid, set[Uid]] = {}
    total = 0
    for root in parents if roots is None else roots:
        if root in known:
            continue
        stack: list[tuple[Uid, bool]] = [(root, False)]
        open_path: set[Uid] = set()
        while stack:
            node, expanded = stack.pop()
            if node in known:
                continue
            links = parents.get(node, set())
            if not expanded:
                open_path.add(node)
                stack.append((node, True))
                stack.extend(
                    (up, False)
                    for up in links
                    if up in parents and up not in known and up not in open_path
                )
                continue
            open_path.discard(node)
            ancestors = set(links)
            for up in links:
                ancestors |= known.get(up, set())
            known[node] = ancestors
            total += len(ancestors)
            if total > limit:
                return total
    return total


def _check_uid(uid: Any, field: str, limits: Limits) -> None:
    for part in ("type", "id"):
        value = getattr(uid, part)
        if len(value) > limits.max_id_length:
            raise _over(f"{field}.{part}", f"{len(value)} characters", limits, "max_id_length")


class _Over(Exception):
    """A limit crossed deep inside a value; the path is collected while unwinding."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(what)
        self.what = what
        self.name = name
        self.path: list[str] = []

    def at(self, field: str, limits: Limits) -> LimitExceeded:
        return _over(field + "".join(reversed(self.path)), self.what, limits, self.name)


def _key(key: str) -> str:
    """A record key as a path step; a long one shortened (it may be what is over a limit)."""
    if len(key) > 40:
        key = key[:32] + "..."
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"


class _Budget:
    """Counts what a walk may still see (context keys)."""

    __slots__ = ("keys",)

    def __init__(self, keys: int) -> None:
        self.keys = keys


def _check_struct(
    struct: struct_pb2.Struct, field: str, limits: Limits, count_keys: bool = False
) -> None:
    budget = _Budget(limits.max_context_keys if count_keys else -1)
    try:
        _walk_struct(struct, 1, limits, budget)
    except _Over as over:
        raise over.at(field, limits) from None


def _walk_struct(struct: struct_pb2.Struct, depth: int, limits: Limits, budget: _Budget) -> None:
    if depth > limits.max_depth:
        raise _Over(f"nesting depth {depth}", "max_depth")
    items = struct.fields
    if budget.keys >= 0:
        budget.keys -= len(items)
        if budget.keys < 0:
            raise _Over("the number of context keys", "max_context_keys")
    for key, value in items.items():
        try:
            if len(key) > limits.max_string_length:
                raise _Over(f"a key of {len(key)} characters", "max_string_length")
            _walk_value(value, depth, limits, budget)
        except _Over as over:
            over.path.append(_key(key))
            raise


def _walk_value(value: struct_pb2.Value, depth: int, limits: Limits, budget: _Budget) -> None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        if len(value.string_value) > limits.max_string_length:
            raise _Over(f"{len(value.string_value)} characters", "max_string_length")
    elif kind == "struct_value":
        _walk_struct(value.struct_value, depth + 1, limits, budget)
    elif kind == "list_value":
        if depth + 1 > limits.max_depth:
            raise _Over(f"nesting depth {depth + 1}", "max_depth")
        for index, item in enumerate(value.list_value.values):
            try:
                _walk_value(item, depth + 1, limits, budget)
            except _Over as over:
                over.path.append(f"[{index}]")
                raise


# --- Cedar JSON text ---------------------------------------------------------------------


def _context_text(text: str, limits: Limits) -> bool:
    """Whether counting alone proves a context text within the limits."""
    return (
        text.count("{") + text.count("[") <= limits.max_depth
        and text.count(":") <= limits.max_context_keys
        and len(text) <= limits.max_string_length
    )


def _entities_text(text: str, limits: Limits) -> bool:
    """Whether counting alone proves an entity list text within the limits.

    Every entity and every parent reference is a JSON object, so at most `max_depth`
    braces and brackets also bound the entities, their links and the hierarchy.
    """
    objects = text.count("{")
    return (
        objects + text.count("[") <= limits.max_depth
        and objects <= limits.max_entities
        and objects * objects <= limits.max_ancestors
        and len(text) <= min(limits.max_string_length, limits.max_id_length)
    )


def _parse(text: str, field: str, limits: Limits, cheap: bool) -> Any:
    """`text` parsed when the cheap counts cannot vouch for it; None when they can or when it
    is not JSON at all (Cedar reports that, saying where)."""
    if cheap:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise _over(field, "nesting depth", limits, "max_depth") from None
    except ValueError:
        return None


def _walk_entities(document: Any, limits: Limits, parents: Parents) -> None:
    if not isinstance(document, list):
        return  # not an entity list: left to Cedar
    if len(document) > limits.max_entities:
        raise _Over(f"{len(document)} entities", "max_entities")
    links = sum(len(e["parents"]) for e in document if isinstance(e, dict) and _is_list(e))
    if links > limits.max_ancestors:  # every link is a pair: no need to look further
        raise _Over(f"{links} parent links", "max_ancestors")
    for index, entity in enumerate(document):
        try:
            if isinstance(entity, dict):
                _walk_entity(entity, limits, parents)
        except _Over as over:
            over.path.append(f"[{index}]")
            raise


def _is_list(entity: dict[str, Any]) -> bool:
    return isinstance(entity.get("parents"), list)


def _walk_entity(entity: dict[str, Any], limits: Limits, parents: Parents) -> None:
    ups = entity.get("parents")
    ups = ups if isinstance(ups, list) else []
    if len(ups) > limits.max_entities:
        raise _Over(f"{len(ups)} parents", "max_entities")
    uid = _uid(entity.get("uid"), ".uid", limits)
    links = {u for i, p in enumerate(ups) if (u := _uid(p, f".parents[{i}]", limits))}
    if uid is not None:
        parents.setdefault(uid, set()).update(links)
    for key, value in entity.items():
        try:
            _walk_json(value, 0 if key in ("uid", "parents") else 1, limits, _Budget(-1))
        except _Over as over:
            over.path.append(_key(key))
            raise


def _uid(value: Any, where: str, limits: Limits) -> Uid | None:
    """The (type, id) of a uid in Cedar JSON; _Over when either is too long."""
    found = uid_parts(value)
    for part, text in found.items():
        if len(text) > limits.max_id_length:
            over = _Over(f"{len(text)} characters", "max_id_length")
            over.path.append(f"{where}.{part}")
            raise over
    if len(found) == 2:
        return (found["type"], found["id"])
    return None


def _walk_json(value: Any, depth: int, limits: Limits, budget: _Budget) -> None:
    if isinstance(value, str):
        if len(value) > limits.max_string_length:
            raise _Over(f"{len(value)} characters", "max_string_length")
        return
    if isinstance(value, dict):
        if depth > limits.max_depth:
            raise _Over(f"nesting depth {depth}", "max_depth")
        if budget.keys >= 0:
            budget.keys -= len(value)
            if budget.keys < 0:
                raise _Over("the number of context keys", "max_context_keys")
        for key, item in value.items():
            try:
                if len(key) > limits.max_string_length:
                    raise _Over(f"a key of {len(key)} characters", "max_string_length")
                _walk_json(item, depth + 1, limits, budget)
            except _Over as over:
                over.path.append(_key(key))
                raise
    elif isinstance(value, list):
        if depth > limits.max_depth:
            raise _Over(f"nesting depth {depth}", "max_depth")
        for index, item in enumerate(value):
            try:
                _walk_json(item, depth + 1, limits, budget)
            except _Over as over:
                over.path.append(f"[{index}]")
                raise


# --- Check (Envoy ext_authz) -------------------------------------------------------------


def check_http(message: Any, limits: Limits) -> None:
    """Raise HttpLimitExceeded when a CheckRequest's path or headers are over a limit."""
    http = message.attributes.request.http
    field = "attributes.request.http"
    path = http.path
    if (len(path) + len(http.query)) * 4 > limits.max_path_bytes:  # else it cannot be over
        size = len(path.encode("utf-8", "surrogatepass")) + len(http.query.encode("utf-8"))
        if size > limits.max_path_bytes:
            raise HttpLimitExceeded(
                f"{field}.path",
                f"{size} bytes is over the limit of {limits.max_path_bytes} "
                f"({FLAG_NAMES['max_path_bytes']})",
                414,
            )
    mapped = http.HasField("header_map") and len(http.header_map.headers) > 0
    count = len(http.header_map.headers) if mapped else len(http.headers)
    name = f"{field}.header_map" if mapped else f"{field}.headers"
    if count > limits.max_headers:
        raise HttpLimitExceeded(
            name,
            f"{count} headers is over the limit of {limits.max_headers} "
            f"({FLAG_NAMES['max_headers']})",
            431,
        )
    if http.ByteSize() <= limits.max_header_bytes:
        return  # the headers are a part of it: no need to add them up
    if mapped:
        size = sum(len(h.key) + len(h.value) + len(h.raw_value) for h in http.header_map.headers)
    else:
        size = sum(len(k) + len(v) for k, v in http.headers.items())
    if size > limits.max_header_bytes:
        raise HttpLimitExceeded(
            name,
            f"{size} bytes of headers is over the limit of {limits.max_header_bytes} "
            f"({FLAG_NAMES['max_header_bytes']})",
            431,
        )


# --- deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a call's evaluation must end (`time.monotonic()`), and which bound that is."""

    until: float
    bound: str

    def check(self, done: int, total: int) -> None:
        """DeadlineExceeded when the deadline passed with `done` of `total` items decided."""
        if time.monotonic() > self.until:
            raise DeadlineExceeded(f"{self.bound} passed with {done} of {total} items decided")


def deadline(time_remaining: float | None, limits: Limits) -> Deadline:
    """The deadline of a call's evaluation: the client's or the server's bound, the earlier.

    `time_remaining` is grpc's `context.time_remaining()` (None: the client set none);
    DeadlineExceeded when it has already passed, so no work starts for an expired call.
    """
    now = time.monotonic()
    seconds = limits.eval_timeout_seconds
    until = Deadline(now + seconds, f"the evaluation limit of {seconds:g} s (--eval-timeout)")
    if not seconds:
        until = Deadline(math.inf, "")
    if time_remaining is not None:
        if time_remaining <= 0:
            raise DeadlineExceeded("the call's deadline passed before evaluation started")
        if now + time_remaining < until.until:
            until = Deadline(now + time_remaining, "the call's deadline")
    return until
