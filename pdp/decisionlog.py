"""Decision logs: one JSON line per decision, masked by bundle rules, written off the request path.

The request path hands over references (the decision, the request, the bundle) in one small
record; a writer thread builds, masks and encodes the JSON and writes each line with one
`os.write` on an O_APPEND descriptor, so lines from several processes sharing the sink never
interleave mid-line. When the sink is slow or blocked the bounded queue fills and new
entries are dropped and counted; a decision never waits for the log.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import json
import logging
import os
import random
import re
import select
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdp.metrics import (
    Metrics,
    MetricsServer,
    PrometheusMetrics,
    multiprocess_mode,
    serve_metrics,
)
from pdp.model import AuthzRequest, Decision, EntityRef

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle
    from pdp.bundle.store import BundleStore

log = logging.getLogger("pdp.decisionlog")

IS_AUTHORIZED = "IsAuthorized"
BATCH_IS_AUTHORIZED = "BatchIsAuthorized"
CHECK = "Check"
IDENTITY_KINDS = ("jwt", "mtls", "api_key", "none")
MASKED = "[masked]"
_ROOTS = ("context", "attrs")
DEFAULT_CAPACITY = 10_000
MAX_LINE_BYTES = 64 * 1024
ERROR_REPORT_SECONDS = 60.0
_SECRET_KEY = re.compile(
    r"passw|secret|token|api[-_]?key|authorization|cookie|credential|private[-_]?key|signature",
    re.I,
)
_SECRET_VALUE = re.compile(r"^\s*(?:bearer\s+\S|basic\s+\S|eyJ[\w-]+\.[\w-]+\.)", re.I)


@dataclass(frozen=True, slots=True)
class GatewayFields:
    """What the Envoy `Check` path adds to a decision log entry and to the metrics.

    Never put a token, key or secret here: only the token's `jti`, `kid` and `iss`.
    `authn_failure` is a short snake_case reason (`expired`, `bad_signature`, ...): it is a
    metric label, so anything else is counted as `other`.
    """

    method: str = ""
    path: str = ""  # normalized, without the query string
    route: str | None = None  # the matched route template
    source_address: str = ""
    identity_kind: str = "none"  # jwt, mtls, api_key or none
    principal: EntityRef | None = None  # when no Cedar request was built (401, unknown route)
    token_jti: str | None = None
    token_kid: str | None = None
    token_iss: str | None = None
    http_status: int = 0
    authn_failure: str | None = None
    unknown_route: bool = False


@dataclass(frozen=True, slots=True)
class LogRules:
    """A bundle's `decision_log` manifest section: what request data is logged, and masked."""

    context: bool = False
    entities: bool = False
    mask: tuple[tuple[str, ...], ...] = ()
    drop: tuple[tuple[str, ...], ...] = ()
    mask_secrets: bool = True

    @classmethod
    def parse(cls, value: object) -> LogRules:
        """Rules from the manifest value; raise ValueError naming the problem."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError("decision_log must be a mapping")
        unknown = sorted(set(value) - {"context", "entities", "mask", "drop", "mask_secrets"})
        if unknown:
            raise ValueError(
                f"decision_log: unknown key {unknown[0]!r} "
                "(expected context, entities, mask, drop, mask_secrets)"
            )
        flags = {}
        for key, default in (("context", False), ("entities", False), ("mask_secrets", True)):
            flag = value.get(key, default)
            if not isinstance(flag, bool):
                raise ValueError(f"decision_log.{key} must be true or false")
            flags[key] = flag
        return cls(
            mask=_parse_paths(value.get("mask"), "mask"),
            drop=_parse_paths(value.get("drop"), "drop"),
            **flags,
        )


def _parse_paths(value: object, key: str) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"decision_log.{key} must be a list of paths like context.user.ssn")
    paths = []
    for text in value:
        parts = tuple(text.split("."))
        if len(parts) < 2 or parts[0] not in _ROOTS or "" in parts or parts[-1] == "**":
            raise ValueError(
                f"decision_log.{key}: {text!r} must be a dotted path under context. or attrs. "
                "(a segment may be * for any key, or ** for any depth before a key)"
            )
        paths.append(parts)
    return tuple(paths)


def rules_of(bundle: CompiledBundle | None) -> LogRules:
    """The decision log rules of a bundle's manifest (already validated at load)."""
    if bundle is None:
        return LogRules()
    try:
        return LogRules.parse(bundle.source.manifest.raw.get("decision_log"))
    except ValueError:
        return LogRules()


class Masker:
    """Drops and masks fields of logged context and attributes; never mutates its input."""

    def __init__(self, rules: LogRules) -> None:
        self._mask = {root: [p[1:] for p in rules.mask if p[0] == root] for root in _ROOTS}
        self._drop = {root: [p[1:] for p in rules.drop if p[0] == root] for root in _ROOTS}
        self._secrets = rules.mask_secrets

    def apply(self, root: str, value: Any) -> Any:
        """A masked copy of `value`, the logged object under `root` (context or attrs)."""
        return self._walk(value, self._mask[root], self._drop[root])

    def _walk(self, value: Any, mask: list[tuple[str, ...]], drop: list[tuple[str, ...]]) -> Any:
        if isinstance(value, Mapping):
            mask, drop = _expand(mask), _expand(drop)
            out: dict[str, Any] = {}
            for key, item in value.items():
                key = str(key)
                drop_here, drop_below = _step(drop, key)
                if drop_here:
                    continue
                mask_here, mask_below = _step(mask, key)
                if mask_here or (self._secrets and _SECRET_KEY.search(key)):
                    out[key] = MASKED
                else:
                    out[key] = self._walk(item, mask_below, drop_below)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, mask, drop) for item in value]
        if isinstance(value, str) and self._secrets and _SECRET_VALUE.match(value):
            return MASKED
        return value


def _expand(patterns: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Patterns applying at this level: a leading `**` also matches zero levels."""
    out: list[tuple[str, ...]] = []
    pending = list(patterns)
    while pending:
        pattern = pending.pop()
        out.append(pattern)
        if pattern and pattern[0] == "**" and len(pattern) > 1:
            pending.append(pattern[1:])
    return out


def _step(patterns: list[tuple[str, ...]], key: str) -> tuple[bool, list[tuple[str, ...]]]:
    """Whether `key` itself is targeted, and the patterns for its children."""
    here = False
    below: list[tuple[str, ...]] = []
    for pattern in patterns:
        head = pattern[0]
        if head == "**":
            below.append(pattern)  # one more level, still anything below
        elif head in ("*", key):
            if len(pattern) == 1:
                here = True
            else:
                below.append(pattern[1:])
    return here, below


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which decisions are logged: every deny, and this fraction of allows."""

    allow_rate: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Sampling:
        """`all`, `deny-only`, or a rate in [0, 1] for allows; raise ValueError otherwise."""
        if text == "all":
            return cls(1.0)
        if text == "deny-only":
            return cls(0.0)
        try:
            rate = float(text)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"expected all, deny-only or a rate between 0 and 1, got {text!r}")
        return cls(rate)

    def keep(self, allowed: bool) -> bool:
        rate = self.allow_rate
        return not allowed or rate >= 1.0 or (rate > 0.0 and random.random() < rate)


class Sink:
    """A file descriptor the writer thread owns: O_APPEND, one `os.write` per line."""

    def __init__(
        self, name: str, fd: int | None = None, path: str | None = None, owned: bool = True
    ) -> None:
        self.name = name
        self._fd = fd
        self._path = path  # opened by the writer thread: a FIFO with no reader yet blocks
        self._owned = owned

    def open(self) -> None:
        if self._fd is None and self._path is not None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def write(self, data: bytes) -> None:
        """Write all of `data`; a line of up to PIPE_BUF bytes is one atomic write."""
        if self._fd is None:
            raise OSError(errno.EBADF, "decision log sink is not open")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:  # an inherited non-blocking descriptor
                select.select([], [self._fd], [], 1.0)
                continue
            view = view[written:]

    def close(self) -> None:
        if self._fd is not None and self._owned:
            os.close(self._fd)
        self._fd = None


def open_sink(target: str) -> Sink | None:
    """The sink for `--decision-log`: `off`, `-` (stdout) or a file path (also a FIFO).

    For `-`, descriptor 1 becomes the log's own: Python's `sys.stdout` is pointed at stderr,
    so no stray print can land between decision log lines. Raises OSError when a file
    cannot be opened.
    """
    if target == "off":
        return None
    if target == "-":
        fd = sys.stdout.fileno()
        sys.stdout.flush()
        sys.stdout = sys.stderr
        _set_append(fd)
        return Sink("stdout", fd=fd, owned=False)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(target, flags, 0o640)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads yet: the writer thread waits
            return Sink(target, path=target)
        raise
    os.set_blocking(fd, True)
    return Sink(target, fd=fd)


def _set_append(fd: int) -> None:
    """Make writes to a regular file append, so several processes never overwrite lines."""
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except OSError:
        pass


@dataclass(slots=True)
class _Record:
    """What one call hands over: references only; the writer thread builds the lines."""

    api: str
    time: float
    seconds: float
    bundle: CompiledBundle | None
    decisions: Sequence[Decision]
    requests: Sequence[AuthzRequest | None]
    indices: Sequence[int] | None = None  # batch items kept by sampling; None: all
    shared_entities: str | None = None
    gateway: GatewayFields | None = None

    @property
    def count(self) -> int:
        return len(self.decisions) if self.indices is None else len(self.indices)


_STOP = object()
FLUSH_INTERVAL_SECONDS = 0.05  # how long an entry may wait in the queue when traffic is light


class DecisionLog:
    """A bounded queue of records and the writer thread that drains it into a Sink."""

    def __init__(
        self,
        sink: Sink,
        sampling: Sampling | None = None,
        capacity: int = DEFAULT_CAPACITY,
        metrics: Metrics | None = None,
    ) -> None:
        self.sink = sink
        self.sampling = sampling or Sampling()
        self.capacity = capacity
        self.dropped = 0
        self.written = 0
        self._metrics = metrics or Metrics()
        self._queue: collections.deque[Any] = collections.deque()
        self._pending = 0
        self._wake_threshold = max(1, capacity // 8)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pdp-decision-log", daemon=True)
        self._masker: tuple[CompiledBundle | None, Masker, LogRules] | None = None
        self._last_error_report = 0.0
        self._errors_since_report = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued within `timeout`; a blocked sink loses the rest (reported)."""
        if not self._thread.is_alive():
            return
        self._queue.append(_STOP)
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "decision log sink is blocked; queued entries were not written",
                extra={"event": "decision_log_unflushed", "entries": self._pending},
            )
        else:
            self.sink.close()

    def submit(self, record: _Record) -> None:
        """Queue a record, or count its entries as dropped when the queue is full."""
        count = record.count
        if count == 0:
            return
        with self._lock:
            full = self._pending + count > self.capacity
            if full:
                self.dropped += count
            else:
                self._pending += count
                self._queue.append(record)
        if full:
            self._metrics.log_dropped("queue_full", count)
            return
        # Waking the writer per entry would hand it the GIL on every call; it drains on a
        # short timer instead, or now when the queue fills up.
        if self._pending >= self._wake_threshold:
            self._wake.set()

    def _run(self) -> None:
        try:
            self.sink.open()
        except OSError as exc:
            log.error(
                "cannot open decision log",
                extra={"event": "decision_log_error", "sink": self.sink.name, "error": str(exc)},
            )
        while True:
            self._wake.wait(FLUSH_INTERVAL_SECONDS)
            self._wake.clear()
            while self._queue:
                record = self._queue.popleft()
                if record is _STOP:
                    return
                self._write(record)
                with self._lock:
                    self._pending -= record.count

    def _write(self, record: _Record) -> None:
        written = 0
        for index in record.indices if record.indices is not None else range(record.count):
            try:
                self.sink.write(self._line(record, index))
                written += 1
            except Exception as exc:  # OSError, or a bug building one entry: keep writing
                with self._lock:
                    self.dropped += 1
                self._metrics.log_dropped("write_error")
                self._report(exc)
        if written:
            self.written += written
            self._metrics.log_written(written)

    def _line(self, record: _Record, index: int) -> bytes:
        entry = self.entry(record, index)
        line = _encode(entry)
        if len(line) > MAX_LINE_BYTES:
            for key in ("context", "entities", "errors"):
                entry.pop(key, None)
            entry["truncated"] = True
            line = _encode(entry)
        return line

    def entry(self, record: _Record, index: int) -> dict[str, Any]:
        """The JSON object for one decision of a record."""
        decision = record.decisions[index]
        request = record.requests[index] if index < len(record.requests) else None
        bundle = record.bundle
        gateway = record.gateway
        principal = request.principal if request is not None else None
        if principal is None and gateway is not None:
            principal = gateway.principal
        entry: dict[str, Any] = {
            "time": _rfc3339(record.time),
            "decision_id": decision.decision_id,
            "api": record.api,
            "bundle_name": bundle.name if bundle is not None else None,
            "bundle_revision": decision.bundle_revision or None,
            "principal": _text(principal),
            "action": _text(request.action if request is not None else None),
            "resource": _text(request.resource if request is not None else None),
            "decision": decision.word,
            "determining_policies": list(decision.determining_policies),
            "erroring_policies": list(decision.erroring_policies),
            "errors": list(decision.errors),
            "latency_us": round(record.seconds * 1e6),
        }
        if record.api == BATCH_IS_AUTHORIZED:
            entry["batch_index"] = index
        if gateway is not None:
            entry.update(_gateway_fields(gateway))
        if request is not None:
            self._add_request_data(entry, record, request)
        return entry

    def _add_request_data(
        self, entry: dict[str, Any], record: _Record, request: AuthzRequest
    ) -> None:
        masker, rules = self._masker_for(record.bundle)
        if rules.context:
            context = _context_of(request)
            if context is not None:
                entry["context"] = masker.apply("context", context)
        if rules.entities:
            entities = _entities_of(record.shared_entities) + _entities_of(request.entities_json)
            if entities:
                entry["entities"] = [
                    {**e, "attrs": masker.apply("attrs", e["attrs"])} for e in entities
                ]

    def _masker_for(self, bundle: CompiledBundle | None) -> tuple[Masker, LogRules]:
        cached = self._masker
        if cached is None or cached[0] is not bundle:
            rules = rules_of(bundle)
            cached = (bundle, Masker(rules), rules)
            self._masker = cached
        return cached[1], cached[2]

    def _report(self, exc: BaseException) -> None:
        """Log write errors to the server log, at most once a minute."""
        self._errors_since_report += 1
        now = time.monotonic()
        if now - self._last_error_report < ERROR_REPORT_SECONDS:
            return
        log.error(
            "cannot write decision log",
            extra={
                "event": "decision_log_error",
                "sink": self.sink.name,
                "error": f"{type(exc).__name__}: {exc}",
                "failed_entries": self._errors_since_report,
            },
        )
        self._last_error_report = now
        self._errors_since_report = 0


class Recorder:
    """What every edge calls once per answered call: metrics, then the decision log."""

    def __init__(
        self,
        decision_log: DecisionLog | None = None,
        metrics: Metrics | None = None,
        metrics_server: MetricsServer | None = None,
    ) -> None:
        self.decision_log = decision_log
        self.metrics = metrics or Metrics()
        self.metrics_server = metrics_server

    @classmethod
    def start(
        cls,
        target: str = "-",
        sampling: Sampling | None = None,
        capacity: int = DEFAULT_CAPACITY,
        metrics_address: str | None = None,
        store: BundleStore | None = None,
    ) -> Recorder:
        """Open the decision log sink and start the writer and the metrics endpoint.

        Metrics are recorded when `metrics_address` is given, and in multiprocess mode
        (PROMETHEUS_MULTIPROC_DIR set) by every process, whichever one serves them.
        Raises OSError when the sink cannot be opened or the metrics port cannot be bound.
        """
        metrics: Metrics = Metrics()
        server = None
        if metrics_address is not None or multiprocess_mode():
            prometheus = PrometheusMetrics()
            if metrics_address is not None:
                server = serve_metrics(metrics_address, prometheus)
            metrics = prometheus
        try:
            sink = open_sink(target)
        except OSError:
            if server is not None:
                server.stop()
            raise
        decision_log = None
        if sink is not None:
            decision_log = DecisionLog(sink, sampling, capacity, metrics)
            decision_log.start()
        log.info(
            "decision log",
            extra={
                "event": "decision_log",
                "sink": sink.name if sink is not None else "off",
                "allow_sample_rate": (sampling or Sampling()).allow_rate,
                "capacity": capacity,
            },
        )
        if store is not None:
            store.subscribe(metrics.bundle_status)
        return cls(decision_log, metrics, server)

    def stop(self, timeout: float = 2.0) -> None:
        """Flush the decision log (within `timeout`) and close the metrics endpoint."""
        if self.decision_log is not None:
            self.decision_log.stop(timeout)
        if self.metrics_server is not None:
            self.metrics_server.stop()

    def decision(
        self,
        api: str,
        started: float,
        bundle: CompiledBundle | None,
        decision: Decision,
        request: AuthzRequest | None = None,
        gateway: GatewayFields | None = None,
    ) -> None:
        """One decision; `started` is `time.perf_counter()` when the call came in."""
        seconds = time.perf_counter() - started
        metrics = self.metrics
        metrics.call(api, seconds)
        metrics.decisions(api, int(decision.allowed), int(not decision.allowed))
        if gateway is not None:
            if gateway.authn_failure:
                metrics.authn_failure(gateway.authn_failure)
            if gateway.unknown_route:
                metrics.unknown_endpoint()
        sink = self.decision_log
        if sink is not None and sink.sampling.keep(decision.allowed):
            record = _Record(api, time.time(), seconds, bundle, (decision,), (request,))
            record.gateway = gateway
            sink.submit(record)

    def batch(
        self,
        api: str,
        started: float,
        bundle: CompiledBundle | None,
        decisions: Sequence[Decision],
        requests: Sequence[AuthzRequest | None],
        shared_entities: str | None = None,
    ) -> None:
        """The decisions of one batch call, `requests` aligned with them (None: malformed)."""
        seconds = time.perf_counter() - started
        allowed = sum(1 for d in decisions if d.allowed)
        self.metrics.call(api, seconds)
        self.metrics.decisions(api, allowed, len(decisions) - allowed)
        sink = self.decision_log
        if sink is None:
            return
        indices = None
        if sink.sampling.allow_rate < 1.0:
            indices = [i for i, d in enumerate(decisions) if sink.sampling.keep(d.allowed)]
        record = _Record(api, time.time(), seconds, bundle, decisions, requests, indices)
        record.shared_entities = shared_entities
        sink.submit(record)

    def failed(self, api: str, started: float, code: str) -> None:
        """A call that ended with a gRPC error status `code` and no decision."""
        self.metrics.call(api, time.perf_counter() - started)
        self.metrics.request_error(api, code)


def _gateway_fields(gateway: GatewayFields) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": gateway.method,
        "path": gateway.path,
        "route": gateway.route,
        "source_address": gateway.source_address,
        "identity_kind": gateway.identity_kind,
        "http_status": gateway.http_status,
    }
    for name in ("token_jti", "token_kid", "token_iss", "authn_failure"):
        value = getattr(gateway, name)
        if value is not None:
            fields[name] = value
    if gateway.unknown_route:
        fields["unknown_route"] = True
    return fields


def _context_of(request: AuthzRequest) -> Any:
    if request.context is not None:
        return request.context
    if request.context_json:
        try:
            return json.loads(request.context_json)
        except ValueError:
            return None
    return None


def _entities_of(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        items = json.loads(text)
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        attrs = item.get("attrs")
        out.append(
            {
                "uid": _uid_text(item.get("uid")),
                "parents": [_uid_text(p) for p in item.get("parents") or []],
                "attrs": attrs if isinstance(attrs, Mapping) else {},
            }
        )
    return out


def _uid_text(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("__entity", value)
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        return str(EntityRef(value["type"], str(value.get("id", ""))))
    return None


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
_quote = json.encoder.encode_basestring  # what str(EntityRef) does, without json.dumps' setup
_last_second: tuple[int, str] = (-1, "")  # the last whole second, formatted; swapped whole


def _text(ref: EntityRef | None) -> str | None:
    """`Type::"id"`, exactly as str(EntityRef)."""
    return f"{ref.type}::{_quote(ref.id)}" if ref is not None else None


def _rfc3339(seconds: float) -> str:
    global _last_second
    whole = int(seconds)
    cached = _last_second
    if cached[0] != whole:
        cached = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        _last_second = cached
    return f"{cached[1]}.{int((seconds - whole) * 1e6):06d}Z"


def _encode(entry: dict[str, Any]) -> bytes:
    return _ENCODER.encode(entry).encode("ascii") + b"\n"


class LazyRequests(Sequence[AuthzRequest | None]):
    """Items converted only when the writer thread reads them, so a batch pays nothing twice."""

    def __init__(self, items: Sequence[Any], convert: Callable[[Any], AuthzRequest | None]) -> None:
        self._items = items
        self._convert = convert

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._convert(item) for item in self._items[index]]
        return self._convert(self._items[index])
