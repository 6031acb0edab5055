"""The one-method interfaces the runner decides through, and their engine-backed versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.errors import RequestError
from pdp.model import AuthzRequest, Decision, EntityRef
from pdp.policytest.model import HttpCase


class Checker(Protocol):
    """Decides Cedar requests that share the same request entities, in order."""

    def check(self, requests: Sequence[AuthzRequest], entities_json: str | None) -> list[Decision]:
        """One decision per request; a malformed request is a deny marked `malformed`."""
        ...


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    """What the gateway answered for one HTTP case."""

    status: int  # the HTTP status Envoy would return: 200 on allow
    allowed: bool
    determining_policies: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    route: str | None = None  # the routes.yaml route that matched, if any
    action: EntityRef | None = None  # the Cedar action the route mapped to, if any
    detail: str = ""  # a one-line explanation (e.g. the deny reason)
    problem: str = ""  # the case cannot be run as written: it fails, whatever it expects


class HttpChecker(Protocol):
    """Decides HTTP cases through the gateway pipeline (identity, route, policy)."""

    routes: tuple[str, ...]  # every route of routes.yaml, as the outcome's `route` names them

    def check_http(self, case: HttpCase) -> HttpOutcome:
        """The gateway's answer to `case`, with signatures not checked (nothing is signed)."""
        ...


@dataclass(slots=True)
class EngineChecker:
    """Decides with `pdp.engine.decide_batch` on one compiled bundle, as the server does."""

    bundle: CompiledBundle
    calls: int = field(default=0)

    def check(self, requests: Sequence[AuthzRequest], entities_json: str | None) -> list[Decision]:
        self.calls += 1
        try:
            return engine.decide_batch(self.bundle, requests, entities_json)
        except RequestError as exc:  # the shared request entities are malformed
            return [engine.malformed_decision(self.bundle, exc) for _ in requests]
