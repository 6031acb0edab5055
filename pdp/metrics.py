"""Prometheus metrics: decisions, latency, authentication, bundles and the decision log."""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from pdp.live.store import BundleStatus

log = logging.getLogger("pdp.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
APIS = (
    "IsAuthorized",
    "BatchIsAuthorized",
    "Check",
    "PlanResources",
    "AccessEvaluation",
    "AccessEvaluations",
    "ForwardAuth",
)
DROP_REASONS = ("queue_full", "write_error")
FETCH_RESULTS = ("updated", "not_modified", "failed", "rejected")  # pdp.live.remote's
# From a cache-hot single decision (~100 us) to a slow batch or a stalled event loop.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_LABEL_TOKEN = re.compile(r"^[a-z0-9_]{1,40}$")


def multiprocess_mode() -> bool:
    """Whether metrics are shared by several processes through PROMETHEUS_MULTIPROC_DIR."""
    return bool(os.environ.get(MULTIPROC_ENV))


def label_token(value: str) -> str:
    """`value` if it is a short snake_case token, else "other": labels stay low-cardinality."""
    return value if _LABEL_TOKEN.match(value) else "other"


class Metrics:
    """The no-op metrics used when `--metrics` is off; PrometheusMetrics records for real."""

    def call(self, api: str, seconds: float) -> None:
        """One answered call of `api` (a batch is one call) that took `seconds`."""

    def decisions(self, api: str, allowed: int, denied: int) -> None:
        """Decisions made by one call of `api`."""

    def request_error(self, api: str, code: str) -> None:
        """A call of `api` that ended with gRPC status `code` and no decision."""

    def plan(self, api: str, outcome: str) -> None:
        """A query plan made: `outcome` is allow (always allowed), deny or conditional."""

    def authn_failure(self, reason: str) -> None:
        """A gateway credential that failed verification, by a short reason token."""

    def unknown_endpoint(self) -> None:
        """A gateway request that matched no route."""

    def log_dropped(self, reason: str, count: int = 1) -> None:
        """Decision log entries lost: `queue_full` or `write_error`."""

    def log_written(self, count: int = 1) -> None:
        """Decision log entries written to the sink."""

    def bundle_fetch(self, result: str) -> None:
        """One fetch of a remote bundle: updated, not_modified, failed or rejected."""

    def shadow_mismatch(self, api: str, live: str, shadow: str) -> None:
        """A decision the --shadow candidate answers differently."""

    def decision_cache(self, hit: bool) -> None:
        """One decision cache lookup: a hit (answered without Cedar) or a miss."""

    def bundle_status(self, status: BundleStatus) -> None:
        """A BundleStore listener: bundle info, activations, load failures, activation time."""

    def protection_event(self, detector: str, action: str) -> None:
        """A protection event: a detector that fired, or an observe-mode refusal (alert)."""

    def rate_limited(self, route: str | None) -> None:
        """A gateway request refused by protection (a limit, a throttle or a block)."""

    def protection_fallback(self, active: bool) -> None:
        """The Redis protection state stopped (True) or resumed (False) answering."""


class PrometheusMetrics(Metrics):
    """Every pdp metric in one registry; in multiprocess mode each process writes its own files.

    Multiprocess mode (for several worker processes) is prometheus-client's: it is on when
    PROMETHEUS_MULTIPROC_DIR is set before prometheus_client is first imported, which is why
    the import happens here and not at module level.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self.multiprocess = multiprocess_mode()
        if self.multiprocess and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(
                f"{MULTIPROC_ENV} was set after prometheus_client was imported; "
                "set it before the process starts"
            )
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._decisions = Counter(
            "pdp_decisions_total",
            "Decisions made, by API and outcome (a batch counts each item).",
            ["api", "decision"],
            registry=reg,
        )
        self._errors = Counter(
            "pdp_request_errors_total",
            "Calls that ended with a gRPC error status and no decision, by API and code.",
            ["api", "code"],
            registry=reg,
        )
        self._latency = Histogram(
            "pdp_request_duration_seconds",
            "Time to answer one call, by API (a batch is one call).",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._authn = Counter(
            "pdp_authn_failures_total",
            "Gateway requests whose credential failed verification, by reason.",
            ["reason"],
            registry=reg,
        )
        self._fetches = Counter(
            "pdp_bundle_fetches_total",
            "Fetches of a remote bundle, by result: updated, not_modified, failed, rejected.",
            ["result"],
            registry=reg,
        )
        for result in FETCH_RESULTS:
            self._fetches.labels(result)
        self._shadow_mismatches = Counter(
            "pdp_shadow_mismatches_total",
            "Decisions the --shadow candidate answers differently, by API and both answers.",
            ["api", "live", "shadow"],
            registry=reg,
        )
        self._unknown = Counter(
            "pdp_unknown_endpoint_requests_total",
            "Gateway requests that matched no route (denied).",
            registry=reg,
        )
        self._bundle_info = Gauge(
            "pdp_bundle_info",
            "The active bundle: 1 for its name and revision.",
            ["name", "revision"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self._activations = Counter(
            "pdp_bundle_activations_total",
            "Bundles activated (the first load and every successful reload).",
            registry=reg,
        )
        self._load_failures = Counter(
            "pdp_bundle_load_failures_total",
            "Bundle loads that failed; the active bundle kept serving.",
            registry=reg,
        )
        self._activated_at = Gauge(
            "pdp_bundle_last_activation_timestamp_seconds",
            "Unix time of the last successful bundle activation.",
            multiprocess_mode="livemax",
            registry=reg,
        )
        self._dropped = Counter(
            "pdp_decision_log_dropped_total",
            "Decision log entries lost, by reason (queue_full: the sink is too slow or blocked).",
            ["reason"],
            registry=reg,
        )
        self._written = Counter(
            "pdp_decision_log_written_total",
            "Decision log entries written to the sink.",
            registry=reg,
        )
        self._protection_events = Counter(
            "pdp_protection_events_total",
            "Protection events (docs/protection.md), by detector and action.",
            ["detector", "action"],
            registry=reg,
        )
        self._rate_limited = Counter(
            "pdp_rate_limited_total",
            "Gateway requests refused by protection (limit, throttle or block), by route.",
            ["route"],
            registry=reg,
        )
        self._fallback = Gauge(
            "pdp_protection_state_fallback",
            "1 while the Redis protection state does not answer and in-process limits apply.",
            multiprocess_mode="livemax",
            registry=reg,
        )
        cache = Counter(
            "pdp_decision_cache_total",
            "Decision cache lookups, by result (hit: answered without Cedar; miss: decided).",
            ["result"],
            registry=reg,
        )
        self._cache_children = (cache.labels("miss"), cache.labels("hit"))
        # Children resolved once, so the request path does no label lookups; every series
        # exists (at 0) from the start.
        self._by_api: dict[str, tuple[Any, Any, Any]] = {}
        for api in APIS:
            self._children(api)
        self._drop_children = {reason: self._dropped.labels(reason) for reason in DROP_REASONS}
        self._lock = threading.Lock()
        self._seen_activations = 0
        self._seen_failures = 0
        self._info: tuple[str, str] | None = None

    def call(self, api: str, seconds: float) -> None:
        self._children(api)[2].observe(seconds)

    def decisions(self, api: str, allowed: int, denied: int) -> None:
        allow, deny, _ = self._children(api)
        if allowed:
            allow.inc(allowed)
        if denied:
            deny.inc(denied)

    def request_error(self, api: str, code: str) -> None:
        self._errors.labels(api, code).inc()

    def plan(self, api: str, outcome: str) -> None:
        self._decisions.labels(api, outcome).inc()

    def protection_event(self, detector: str, action: str) -> None:
        self._protection_events.labels(label_token(detector), label_token(action)).inc()

    def rate_limited(self, route: str | None) -> None:
        self._rate_limited.labels((route or "none")[:64]).inc()

    def protection_fallback(self, active: bool) -> None:
        self._fallback.set(1 if active else 0)

    def authn_failure(self, reason: str) -> None:
        self._authn.labels(label_token(reason)).inc()

    def unknown_endpoint(self) -> None:
        self._unknown.inc()

    def log_dropped(self, reason: str, count: int = 1) -> None:
        child = self._drop_children.get(reason) or self._dropped.labels(label_token(reason))
        child.inc(count)

    def log_written(self, count: int = 1) -> None:
        self._written.inc(count)

    def bundle_fetch(self, result: str) -> None:
        self._fetches.labels(result).inc()

    def shadow_mismatch(self, api: str, live: str, shadow: str) -> None:
        self._shadow_mismatches.labels(api, live, shadow).inc()

    def decision_cache(self, hit: bool) -> None:
        self._cache_children[hit].inc()

    def bundle_status(self, status: BundleStatus) -> None:
        try:
            self._bundle_status(status)
        except Exception:  # a listener must never break an activation
            log.exception("cannot update bundle metrics", extra={"event": "metrics_error"})

    def _bundle_status(self, status: BundleStatus) -> None:
        with self._lock:
            if status.activations > self._seen_activations:
                self._activations.inc(status.activations - self._seen_activations)
                self._seen_activations = status.activations
            if status.load_failures > self._seen_failures:
                self._load_failures.inc(status.load_failures - self._seen_failures)
                self._seen_failures = status.load_failures
            if status.activated_at is not None:
                self._activated_at.set(status.activated_at)
            bundle = status.bundle
            info = (bundle.name, bundle.revision) if bundle is not None else None
            if info == self._info:
                return
            if self._info is not None:
                if self.multiprocess:  # per-process files cannot forget a series
                    self._bundle_info.labels(*self._info).set(0)
                else:
                    self._bundle_info.remove(*self._info)
            if info is not None:
                self._bundle_info.labels(*info).set(1)
            self._info = info

    def _children(self, api: str) -> tuple[Any, Any, Any]:
        children = self._by_api.get(api)
        if children is None:
            children = (
                self._decisions.labels(api, "allow"),
                self._decisions.labels(api, "deny"),
                self._latency.labels(api),
            )
            self._by_api[api] = children
        return children


@dataclass
class MetricsServer:
    """The `/metrics` HTTP endpoint: its bound address and how to stop it."""

    server: Any
    thread: threading.Thread
    address: str

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) as a host and port; raise ValueError naming the problem."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


def serve_metrics(address: str, metrics: PrometheusMetrics) -> MetricsServer:
    """Serve `/metrics` on `address` from a daemon thread.

    In multiprocess mode the endpoint aggregates the files of every process writing to
    PROMETHEUS_MULTIPROC_DIR, so one endpoint (in any worker, or in a supervisor) serves all.
    """
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    host, port = parse_address(address)
    registry = metrics.registry
    if metrics.multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    # An IPv4 or IPv6 TCP server: its address starts (host text, port), never a Unix path.
    bound_host, bound_port = cast(tuple[str, int], server.server_address[:2])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    running = MetricsServer(server, thread, f"{shown}:{bound_port}")
    log.info(
        "metrics listening",
        extra={
            "event": "metrics_listening",
            "address": running.address,
            "multiprocess": metrics.multiprocess,
        },
    )
    return running


def mark_process_dead(pid: int) -> None:
    """For a supervisor of worker processes: forget a dead worker's live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
