"""What every edge calls once per answered call: metrics, then the decision log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pdp.decisionlog.entry import MAX_LINE_BYTES, GatewayFields, PlanFields, Record
from pdp.decisionlog.shadow import Shadow
from pdp.decisionlog.sink import open_sink
from pdp.decisionlog.writer import DEFAULT_CAPACITY, DecisionLog, EventLine, Sampling
from pdp.metrics import Metrics
from pdp.model import AuthzRequest, Decision

if TYPE_CHECKING:
    from pdp.bundle.compiler import CompiledBundle
    from pdp.live.store import BundleStore

log = logging.getLogger("pdp.decisionlog")


class Recorder:
    """What every edge calls once per answered call: metrics, then the decision log."""

    def __init__(
        self,
        decision_log: DecisionLog | None = None,
        metrics: Metrics | None = None,
        alerts: DecisionLog | None = None,
    ) -> None:
        self.decision_log = decision_log
        self.metrics = metrics or Metrics()
        self.alerts = alerts  # --alerts PATH: protection events apart from decisions
        self.shadow: Shadow | None = None  # --shadow: records go through it to the log

    @classmethod
    def start(
        cls,
        target: str = "-",
        sampling: Sampling | None = None,
        capacity: int = DEFAULT_CAPACITY,
        metrics: Metrics | None = None,
        store: BundleStore | None = None,
        alerts: str | None = None,
        full_requests: bool = False,
    ) -> Recorder:
        """Open the decision log sink and start its writer; record into `metrics` (none by
        default), which follow `store`'s bundle status. Who serves the metrics is the caller's
        business. Protection events go to the decision log, or to the `alerts` file (or `-`)
        when given. Raises OSError when a sink cannot be opened.
        """
        metrics = metrics or Metrics()
        alerts_log = None
        if alerts is not None:
            alerts_sink = open_sink(alerts)
            if alerts_sink is not None:
                alerts_log = DecisionLog(alerts_sink, None, capacity, metrics)
                alerts_log.start()
        sink = open_sink(target)
        decision_log = None
        if sink is not None:
            decision_log = DecisionLog(sink, sampling, capacity, metrics, full_requests)
            decision_log.start()
        log.info(
            "decision log",
            extra={
                "event": "decision_log",
                "sink": sink.name if sink is not None else "off",
                "allow_sample_rate": (sampling or Sampling()).allow_rate,
                "capacity": capacity,
                "requests": "full" if full_requests else "default",
            },
        )
        if store is not None:
            store.subscribe(metrics.bundle_status)
        return cls(decision_log, metrics, alerts_log)

    def stop(self, timeout: float = 2.0) -> None:
        """Flush the decision log and the alerts (within `timeout` each)."""
        if self.decision_log is not None:
            self.decision_log.stop(timeout)
        if self.alerts is not None:
            self.alerts.stop(timeout)

    def protection_event(self, event: dict[str, Any]) -> None:
        """One protection event: counted, and one JSON line on the alerts or decision log."""
        self.metrics.protection_event(str(event.get("detector")), str(event.get("action")))
        target = self.alerts or self.decision_log
        if target is not None:
            data = json.dumps(event, separators=(",", ":"), ensure_ascii=True, default=str)
            target.submit(EventLine(data.encode("ascii")[:MAX_LINE_BYTES] + b"\n"))

    def rate_limited(self, route: str | None) -> None:
        """A gateway request refused by protection (its decision is recorded as usual)."""
        self.metrics.rate_limited(route)

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
        allowed = decision.allowed
        metrics.call(api, seconds)
        metrics.decisions(api, int(allowed), int(not allowed))
        if gateway is not None:
            if gateway.authn_failure:
                metrics.authn_failure(gateway.authn_failure)
            if gateway.unknown_route:
                metrics.unknown_endpoint()
        sink = self.decision_log
        keep = sink is not None and sink.sampling.keep(allowed)
        if keep or self.shadow is not None:
            record = Record(
                api, time.time(), seconds, bundle, (decision,), (request,), gateway=gateway
            )
            if self.shadow is None and sink is not None:
                sink.submit(record)  # (keep is true here)
            else:
                self._submit(record, keep)

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
        if sink is None and self.shadow is None:
            return
        indices = None
        if sink is not None and sink.sampling.allow_rate < 1.0:
            indices = [i for i, d in enumerate(decisions) if sink.sampling.keep(d.allowed)]
        self._submit(
            Record(
                api,
                time.time(),
                seconds,
                bundle,
                decisions,
                requests,
                indices,
                shared_entities=shared_entities,
            ),
            sink is not None,
        )

    def _submit(self, record: Record, keep: bool) -> None:
        """To the decision log (`keep`), through the shadow evaluation when there is one."""
        sink = self.decision_log
        forward = sink.submit if keep and sink is not None else None
        if self.shadow is not None:
            self.shadow.submit(record, forward)
        elif forward is not None:
            forward(record)

    def plan(
        self,
        api: str,
        started: float,
        bundle: CompiledBundle | None,
        decision: Decision,
        request: AuthzRequest,
        fields: PlanFields,
    ) -> None:
        """One query plan, logged as a line with a `plan` object (`decision`: allow, deny or
        conditional); `decision` carries its id, policies and unsupported parts."""
        seconds = time.perf_counter() - started
        outcome = {"ALWAYS_ALLOWED": "allow", "ALWAYS_DENIED": "deny"}.get(fields.kind)
        self.metrics.call(api, seconds)
        self.metrics.plan(api, outcome or "conditional")
        sink = self.decision_log
        if sink is not None and sink.sampling.keep(decision.allowed):
            sink.submit(
                Record(api, time.time(), seconds, bundle, (decision,), (request,), plan=fields)
            )

    def failed(self, api: str, started: float, code: str) -> None:
        """A call that ended with a gRPC error status `code` and no decision."""
        self.metrics.call(api, time.perf_counter() - started)
        self.metrics.request_error(api, code)


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
