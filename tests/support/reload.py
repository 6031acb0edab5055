"""Reload helpers: a background IsAuthorized load, status waits and atomic file replacement."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc

TIMEOUT = 10.0


REQUEST = pb.IsAuthorizedRequest(
    principal=pb.EntityUid(type="User", id="alice"),
    action=pb.EntityUid(type="Action", id="read"),
    resource=pb.EntityUid(type="Doc", id="d1"),
)


@dataclass(frozen=True, slots=True)
class Answer:
    """One decision as a client saw it."""

    at: float
    revision: str
    decision: int


class Load:
    """Client threads calling IsAuthorized (and BatchIsAuthorized) in a loop, recording answers."""

    def __init__(self, address: str, threads: int = 2, batch_threads: int = 0) -> None:
        self.address = address
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self.mixed_batches: list[list[str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        kinds = [False] * threads + [True] * batch_threads
        self._threads = [
            threading.Thread(target=self._run, args=(batch,), daemon=True) for batch in kinds
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)

    def _run(self, batch: bool) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = pb_grpc.AuthorizerStub(channel)
            while not self._stop.is_set():
                try:
                    if batch:
                        reply = stub.BatchIsAuthorized(
                            pb.BatchIsAuthorizedRequest(requests=[REQUEST] * 4), timeout=TIMEOUT
                        )
                        results = list(reply.results)
                    else:
                        results = [stub.IsAuthorized(REQUEST, timeout=TIMEOUT)]
                except grpc.RpcError as exc:
                    with self._lock:
                        self.errors.append(f"{exc.code().name}: {exc.details()}")
                    time.sleep(0.01)
                    continue
                now = time.monotonic()
                with self._lock:
                    revisions = sorted({r.bundle_revision for r in results})
                    if len(revisions) != 1:
                        self.mixed_batches.append(revisions)
                    self.answers.extend(Answer(now, r.bundle_revision, r.decision) for r in results)

    def wait_for(self, predicate: Callable[[Answer], bool], timeout: float = TIMEOUT) -> Answer:
        """The first answer (from now on) matching `predicate`; fails after `timeout`."""
        with self._lock:
            start = len(self.answers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = next((a for a in self.answers[start:] if predicate(a)), None)
            if found is not None:
                return found
            time.sleep(0.01)
        raise AssertionError(f"no matching answer within {timeout} s")


def wait_status(
    stub: pb_grpc.AuthorizerStub,
    predicate: Callable[[pb.GetStatusResponse], bool],
    timeout: float = TIMEOUT,
) -> pb.GetStatusResponse:
    deadline = time.monotonic() + timeout
    while True:
        status = stub.GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"status did not change as expected within {timeout} s:\n{status}")
        time.sleep(0.02)


def replace_file(path: Path, text: str) -> None:
    """Write the way editors and git-sync do: a hidden temp file renamed over the target."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
