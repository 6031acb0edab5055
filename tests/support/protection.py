"""Helpers for the protection tests: a bundle with protection.yaml, a clock, an event sink."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from envoy.service.auth.v3 import external_auth_pb2 as pb

from pdp.bundle import load_bundle
from pdp.live.store import BundleStore
from pdp.protection import MemoryState, Protection
from pdp.protection.outcome import State
from pdp.server.app import ServeConfig
from tests.support.gateway import bearer, check_request, ext_authz, token
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import InProcessServer

__all__ = ["bearer", "check_request", "token"]

START = 1_800_000_000.0  # 2027-01-15: a whole number of every window used here


class Clock:
    """Time for windows and cool-downs, moved by the test (never slept)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Events:
    """Collects protection events and 429s the way the recorder receives them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.limited: list[str | None] = []

    def protection_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def rate_limited(self, route: str | None) -> None:
        self.limited.append(route)

    def of(self, detector: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["detector"] == detector]


def protected_bundle(folder: Path, protection: str, orders: int = 10) -> Path:
    """The example bundle with `protection` as protection.yaml and `orders` more orders
    (o-1 .. o-N) owned by User 42."""
    target = folder / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, target)
    entities = json.loads((target / "entities.json").read_text())
    for number in range(1, orders + 1):
        entities.append(
            {
                "uid": {"type": "Order", "id": f"o-{number}"},
                "attrs": {
                    "owner": {"__entity": {"type": "User", "id": "42"}},
                    "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
                    "status": "placed",
                    "total_cents": 100,
                },
                "parents": [{"type": "Tenant", "id": "acme"}],
            }
        )
    (target / "entities.json").write_text(json.dumps(entities, indent=1))
    (target / "protection.yaml").write_text(protection)
    return target


class Gateway:
    """A real gRPC server on loopback with protection, and a Check stub for it."""

    def __init__(self, stub: Any, protection: Protection, store: BundleStore) -> None:
        self.stub = stub
        self.protection = protection
        self.store = store

    def check(self, path: str, sub: str | None = "42", ip: str = "10.1.2.3", **kw: Any) -> Any:
        headers = bearer(token(sub=sub)) if sub is not None else {}
        headers.update(kw.pop("headers", {}))
        return self.stub.Check(
            check_request(kw.pop("method", "GET"), path, headers, source_ip=ip, **kw), timeout=10
        )

    def status_of(self, response: pb.CheckResponse) -> int:
        if response.HasField("ok_response"):
            return 200
        return int(response.denied_response.status.code)


@contextmanager
def gateway(
    bundle: Path, clock: Clock, events: Events, state: State | None = None
) -> Iterator[Gateway]:
    store = BundleStore()
    store.activate(load_bundle(bundle))
    protection = Protection(state or MemoryState(), events, clock)
    config = ServeConfig(bundle_path=str(bundle), listen="127.0.0.1:0", protection=protection)
    with InProcessServer(store, config) as server, ext_authz(server.address) as stub:
        yield Gateway(stub, protection, store)
