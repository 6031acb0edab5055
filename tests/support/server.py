"""Real pdp servers for tests: a `pdp serve` subprocess, or an in-process server on a thread."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from typing import Any

import grpc

from pdp.bundle import load_bundle
from pdp.live.store import BundleStore
from pdp.server.app import RunningServer, ServeConfig, start_server
from pdp.v1 import authorizer_pb2_grpc
from tests.support.paths import REPO


class ServerProcess:
    """`python -m pdp serve ...` on a free loopback port, with its output collected."""

    def __init__(self, bundle: str | os.PathLike[str], *args: str, listen: str = "127.0.0.1:0"):
        self.command = [sys.executable, "-m", "pdp", "serve", str(bundle), "--listen", listen]
        self.command += list(args)
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.address: str | None = None
        self.http_address: str | None = None  # with --http-listen: where HTTP is bound
        self._listening = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(
            target=self._drain, args=(self.process.stdout, self.stdout_lines), daemon=True
        ).start()
        threading.Thread(
            target=self._drain, args=(self.process.stderr, self.stderr_lines), daemon=True
        ).start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"server did not start (exit {self.process.returncode}):\n{self.stderr}"
                )
        return self

    def _drain(self, stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)
            if self.http_address is None and '"http_listening"' in line:
                with suppress(ValueError, KeyError):
                    self.http_address = json.loads(line)["address"]
            if self.address is None and '"listening"' in line:
                try:
                    self.address = json.loads(line)["address"]
                except (ValueError, KeyError):
                    continue
                self._listening.set()

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        return "".join(self.stdout_lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessServer:
    """The real gRPC server on a background event loop, over a store the test controls."""

    def __init__(self, store: BundleStore | None = None, config: ServeConfig | None = None):
        self.store = store or BundleStore()
        self.config = config or ServeConfig(bundle_path="", listen="127.0.0.1:0")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._running: RunningServer | None = None

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        future: Future[RunningServer] = asyncio.run_coroutine_threadsafe(
            start_server(self.store, self.config), self._loop
        )
        self._running = future.result(timeout=20)
        return self

    @property
    def address(self) -> str:
        assert self._running is not None
        return self._running.address

    @classmethod
    def over(
        cls, bundle: str | os.PathLike[str], listen: str = "127.0.0.1:0", **config: Any
    ) -> InProcessServer:
        """A server over the bundle at `bundle`, loaded now; `config`: more ServeConfig fields."""
        store = BundleStore()
        store.set_source(str(bundle))
        store.activate(load_bundle(bundle))
        return cls(store, ServeConfig(bundle_path=str(bundle), listen=listen, **config))

    def __exit__(self, *exc: object) -> None:
        if self._running is not None:
            asyncio.run_coroutine_threadsafe(self._running.stop(1.0), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def authorizer_stub(address: str) -> Iterator[authorizer_pb2_grpc.AuthorizerStub]:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield authorizer_pb2_grpc.AuthorizerStub(channel)
