"""Embedded mode: the client's calls decided in-process, on a hot-reloaded bundle.

```python
from pdp.embedded import Authorizer          # was: from pdp.client import AuthorizerClient

with Authorizer("policies") as pdp:          # was: AuthorizerClient("127.0.0.1:9191")
    decision = pdp.is_authorized('User::"42"', "readOrder", ("Order", "o-1001"))
```

Same methods, arguments, `Decision`, `Plan` and errors as `pdp.client`; decided by the same
engine as `pdp serve`, on the same store, reloader and watcher (build, then swap: a bad
bundle is logged and the last good one keeps deciding), with the pdp.v1 request limits on
every input, and the same decision log lines and metrics. Thread-safe: every call reads the
active bundle once; decisions hold the GIL while Cedar evaluates (a few hundred
microseconds), so a thread pool adds no parallelism, only fairness.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pdp.bundle import load_bundle
from pdp.client import messages
from pdp.client.errors import (
    BadRequest,
    CallError,
    DeadlineExceeded,
    ResourceExhausted,
    ServerError,
    Unavailable,
)
from pdp.client.messages import Context, Entities
from pdp.client.types import Decision, Request, Status, UidLike
from pdp.decisioncache import DEFAULT_SIZE, DecisionCache
from pdp.decisionlog import DEFAULT_CAPACITY, Recorder, Sampling
from pdp.errors import DeadlineExceeded as EvaluationDeadline
from pdp.errors import LimitExceeded, NoBundleError, PdpError, RequestError
from pdp.live.reload import Reloader
from pdp.live.store import BundleStore
from pdp.live.watcher import POLL_INTERVAL_SECONDS, WATCH_MODES, make_watcher
from pdp.metrics import Metrics, MetricsServer, PrometheusMetrics, multiprocess_mode, serve_metrics
from pdp.plan import Plan
from pdp.server.calls import Calls
from pdp.server.limits import Limits

log = logging.getLogger("pdp.embedded")
T = TypeVar("T")


class Authorizer:
    """Decide in-process on the bundle at `bundle_dir`.

    `watch`: True (inotify, as `pdp serve --watch auto`), "poll", or False (load once;
    `reload()` reloads). `decision_log`: None (off) or a file path (one JSON line per
    decision, as `pdp serve --decision-log PATH` writes; descriptor 1 stays the
    service's own, so `-` is refused). `metrics_address`: HOST:PORT to serve Prometheus
    metrics on, None for none. `limits`: the pdp.v1 request limits (`pdp serve`'s
    defaults). `decision_cache_size`: decisions kept to answer a repeated request without
    Cedar (`pdp serve --decision-cache-size`; 0: none). Raises `pdp.errors.BundleError`
    when the bundle does not load at all.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        *,
        watch: bool | str = True,
        decision_log: str | os.PathLike[str] | None = None,
        decision_log_sample: str = "all",
        metrics_address: str | None = None,
        limits: Limits | None = None,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        decision_cache_size: int = DEFAULT_SIZE,
    ) -> None:
        mode = "auto" if watch is True else "off" if watch is False else watch
        if mode not in WATCH_MODES:
            raise ValueError(f"watch: expected True, False or one of {WATCH_MODES}, got {watch!r}")
        target = "off" if decision_log is None else os.fspath(decision_log)
        if target in ("-", "off") and decision_log is not None:
            raise ValueError("decision_log: a file path, or None for no decision log")
        self._root = os.fspath(bundle_dir)
        self._store = BundleStore()
        self._store.activate(load_bundle(self._root))  # BundleError: nothing starts
        self._reloader = Reloader(self._root, self._store)
        self._watcher = make_watcher(mode, self._root, self._reloader.request, poll_interval)
        # Recorded when metrics are served, and in multiprocess mode, as `pdp serve` does.
        metrics = Metrics()
        self._metrics_server: MetricsServer | None = None
        if metrics_address is not None or multiprocess_mode():
            prometheus = PrometheusMetrics()
            if metrics_address is not None:
                self._metrics_server = serve_metrics(metrics_address, prometheus)
            metrics = prometheus
        try:
            self._recorder = Recorder.start(
                target, Sampling.parse(decision_log_sample), DEFAULT_CAPACITY, metrics,
                self._store,
            )  # fmt: skip
        except OSError:
            if self._metrics_server is not None:
                self._metrics_server.stop()
            raise
        self.cache = DecisionCache(decision_cache_size, metrics.decision_cache)
        self._store.subscribe(self.cache.status_listener)
        self._calls = Calls(self._store, limits or Limits(), self._recorder, self.cache)
        self._closed = False
        self._reloader.start()
        if self._watcher is not None:
            self._watcher.start()

    def is_authorized(
        self,
        principal: UidLike,
        action: UidLike,
        resource: UidLike,
        *,
        context: Context = None,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> Decision:
        """May `principal` do `action` on `resource`? `action` may be a bare name."""
        message = messages.authz_request(principal, action, resource, context, entities)
        model = self._run(lambda: self._calls.is_authorized(message, timeout))
        return messages.from_model(model)

    def batch_is_authorized(
        self,
        requests: Sequence[Request | tuple[Any, ...]],
        *,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> list[Decision]:
        """Many questions, answered in order; a malformed item is a deny naming its problem."""
        message = messages.batch_request(requests, entities)
        models = self._run(lambda: self._calls.batch_is_authorized(message, timeout))
        return [messages.from_model(model) for model in models]

    def plan_resources(
        self,
        principal: UidLike,
        action: UidLike,
        resource_type: str,
        *,
        context: Context = None,
        entities: Entities = None,
        timeout: float | None = None,
    ) -> Plan:
        """Which resources of `resource_type` may `principal` do `action` on: a query plan."""
        message = messages.plan_request(principal, action, resource_type, context, entities)
        return self._run(lambda: self._calls.plan_resources(message, timeout))

    def status(self, *, timeout: float | None = None) -> Status:
        """The active bundle and the last load error, as the server's GetStatus has them."""
        status = self._store.status
        bundle = status.bundle
        return Status(
            serving=status.serving and not self._closed,
            bundle_name=bundle.name if bundle is not None else "",
            bundle_revision=bundle.revision if bundle is not None else "",
            policy_count=bundle.policy_count if bundle is not None else 0,
            entity_count=bundle.entity_count if bundle is not None else 0,
            activations=status.activations,
            load_failures=status.load_failures,
            last_error=status.last_error,
            warnings=tuple(str(w) for w in bundle.warnings) if bundle is not None else (),
            version=_version(),
        )

    def reload(self) -> Status:
        """Build the bundle now and activate it when valid and changed (as SIGHUP does)."""
        self._reloader.reload("reload()")
        return self.status()

    def close(self) -> None:
        """Stop watching and flush the decision log; later calls raise Unavailable."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.stop()
        self._reloader.stop()
        self._recorder.stop()
        if self._metrics_server is not None:
            self._metrics_server.stop()

    def __enter__(self) -> Authorizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise Unavailable("this Authorizer is closed")
        try:
            return call()
        except PdpError as exc:
            raise typed(exc) from None
        except Exception as exc:  # a bug: still a typed failure, never a decision
            log.exception("embedded call failed", extra={"event": "internal_error"})
            raise ServerError(f"internal error: {type(exc).__name__}") from exc


class AsyncAuthorizer(Authorizer):
    """`Authorizer` with the async methods of `AsyncAuthorizerClient`; calls run inline on
    the loop (a decision is CPU work of well under a millisecond, less than a thread hop)."""

    async def is_authorized(self, *args: Any, **kwargs: Any) -> Decision:  # type: ignore[override]
        return Authorizer.is_authorized(self, *args, **kwargs)

    async def batch_is_authorized(self, *args: Any, **kwargs: Any) -> list[Decision]:  # type: ignore[override]
        return Authorizer.batch_is_authorized(self, *args, **kwargs)

    async def plan_resources(self, *args: Any, **kwargs: Any) -> Plan:  # type: ignore[override]
        return Authorizer.plan_resources(self, *args, **kwargs)

    async def status(self, *, timeout: float | None = None) -> Status:  # type: ignore[override]
        return Authorizer.status(self)

    async def __aenter__(self) -> AsyncAuthorizer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def typed(error: PdpError) -> CallError:
    """The client's error for a pdp error, so embedded and client callers catch the same."""
    if isinstance(error, CallError):
        return error
    if isinstance(error, LimitExceeded):
        return ResourceExhausted(str(error))
    if isinstance(error, RequestError):
        return BadRequest(str(error))
    if isinstance(error, NoBundleError):
        return Unavailable(str(error))
    if isinstance(error, EvaluationDeadline):
        return DeadlineExceeded(str(error))
    return ServerError(str(error))


def _version() -> str:
    import pdp

    return pdp.__version__


__all__ = ["AsyncAuthorizer", "Authorizer"]
