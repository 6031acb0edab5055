"""`pdp serve URL` and `--bundle-cache` end to end: real server, real nginx, calls under load."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pdp.bundle.archive import read_archive
from pdp.bundle.loader import read_bundle
from pdp.bundle.package import pack
from pdp.v1 import authorizer_pb2 as pb
from pdp.v1 import authorizer_pb2_grpc as pb_grpc
from tests.support.archives import Member, raw_archive, rebuild, signing_key, write_key
from tests.support.bundle_server import BundleServer, bundle_server
from tests.support.cli import run_cli, serve_usage_error
from tests.support.observability import make_bundle, metrics_address, request, scrape
from tests.support.polling import wait_for
from tests.support.server import REPO, ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("serve-remote")

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundleServer]:
    with bundle_server(tmp_path_factory.mktemp("nginx")) as running:
        yield running


def status(address: str) -> pb.GetStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.AuthorizerStub(channel).GetStatus(pb.GetStatusRequest(), timeout=TIMEOUT)


def pdp_status(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pdp status` in this process (tests.support.cli.run_cli); its process: test_status.py."""
    return run_cli("status", "--address", address, *args)


class Load:
    """IsAuthorized calls in a loop on one channel, counting answers and failures."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.AuthorizerStub(self._channel)
        self._stop = threading.Event()
        self.answered = 0
        self.failed: list[str] = []
        self.revisions: set[str] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._stub.IsAuthorized(request(), timeout=TIMEOUT)
            except grpc.RpcError as exc:
                self.failed.append(f"{exc.code().name}: {exc.details()}")
            else:
                self.answered += 1
                self.revisions.add(answer.bundle_revision)
            self._stop.wait(0.005)  # bounded: about 200 calls a second at most

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._channel.close()


def test_remote_rollout_under_load(server: BundleServer, tmp_path: Path) -> None:
    pair = write_key(tmp_path, "ec")
    key = signing_key(pair)
    r1 = pack(read_bundle(make_bundle(tmp_path / "r1", revision="r1")), key)
    r2 = pack(read_bundle(make_bundle(tmp_path / "r2", revision="r2")), key)
    files = read_archive(r1)
    tampered = rebuild(dict(files, **{"policies.cedar": b"permit(principal, action, resource);"}))
    escaping = raw_archive([Member("../evil.cedar", b"permit(principal, action, resource);")])
    other = signing_key(write_key(tmp_path, "ed25519"))
    wrong = pack(read_bundle(make_bundle(tmp_path / "r3", revision="r3")), other)
    server.publish(r1, "live.tar.gz")
    url = server.url("live.tar.gz") + "?token=s3cret"
    flags = ["--verification-key", str(pair.public), "--bundle-poll-interval", "0.1"]
    cache = tmp_path / "cache"
    flags += ["--bundle-cache", str(cache), "--metrics", "127.0.0.1:0", "--decision-log", "off"]
    with ServerProcess(url, *flags) as pdp, Load(pdp.address) as load:
        assert pdp.address is not None
        first = status(pdp.address)
        assert (first.serving, first.bundle_revision, first.from_cache) == (True, "r1", False)
        assert first.bundle_source == server.url("live.tar.gz") + "?..."
        wait_for(lambda: load.answered > 20, what="calls answered")
        for bad, expected in [
            (tampered, "does not match its signed SHA-256"),
            (escaping, "climbs out"),
            (wrong, "no trusted verification key matches"),
        ]:
            server.publish(bad, "live.tar.gz")
            now = wait_for(
                lambda expected=expected: (
                    (s := status(pdp.address)).last_fetch_error
                    and expected in s.last_fetch_error
                    and s
                ),
                what=expected,
            )
            assert now.bundle_revision == "r1" and now.serving
        server.publish(r2, "live.tar.gz")
        wait_for(lambda: status(pdp.address).bundle_revision == "r2", what="r2 active")
        assert status(pdp.address).last_fetch_error == ""
        wait_for(lambda: load.revisions == {"r1", "r2"}, what="calls answered by r2")

        def fetches() -> dict[str, float]:
            samples = scrape(metrics_address(pdp))
            return {
                dict(labels)["result"]: value
                for (name, labels), value in samples.items()
                if name == "pdp_bundle_fetches_total"
            }

        # counted just after the swap: wait for the count, not only for the revision
        counted = wait_for(
            lambda: (f := fetches())["updated"] >= 2 and f["not_modified"] >= 1 and f,
            what="2 updates and a 304",
        )
        assert counted["rejected"] == 3, counted
        assert counted["not_modified"] >= 1
    assert load.failed == []
    assert "s3cret" not in pdp.stderr + pdp.stdout
    assert list(cache.glob("*.tar.gz"))  # the last good archive is on disk

    # The source is down at start: the cache serves r2, and says so.
    (server.root / "live.tar.gz").unlink()
    with ServerProcess(url, *flags) as pdp:
        assert pdp.address is not None
        cached = status(pdp.address)
        assert (cached.serving, cached.bundle_revision, cached.from_cache) == (True, "r2", True)
        assert "HTTP 404" in cached.last_fetch_error
        shown = pdp_status(pdp.address)
        assert "r2 (from cache)" in shown.stdout
        assert json.loads(pdp_status(pdp.address, "--json").stdout)["from_cache"] is True
        assert '"bundle_from_cache"' in pdp.stderr


def test_no_source_and_no_cache_exits_3(server: BundleServer, tmp_path: Path) -> None:
    pair = write_key(tmp_path, "ec")
    url = server.url("missing.tar.gz")
    run = subprocess.run(
        [sys.executable, "-m", "pdp", "serve", url, "--verification-key", str(pair.public)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3
    assert "HTTP 404" in run.stderr and '"bundle_load_failed"' in run.stderr


USAGE_ERRORS = [
    (["http://bundles.example/b.tar.gz", "--verification-key", "k.pem"], "plain http"),
    (["https://bundles.example/b.tar.gz"], "needs --verification-key"),
    (["policies", "--verification-key", "k.pem"], "are for a URL source"),
]


@pytest.mark.parametrize(("args", "expected"), USAGE_ERRORS)
def test_usage_errors_exit_2(args: list[str], expected: str) -> None:
    """In this process as far as `pdp serve`'s usage checks; the process is the next test."""
    run = serve_usage_error(*args)
    assert run.returncode == 2
    assert expected in run.stderr


def test_a_usage_error_exits_2_as_a_process() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pdp", "serve", *USAGE_ERRORS[0][0]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert USAGE_ERRORS[0][1] in run.stderr


def test_a_directory_source_starts_on_its_cache(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "bundle", revision="d1")
    cache = tmp_path / "cache"
    flags = ["--bundle-cache", str(cache), "--decision-log", "off", "--watch", "off"]
    with ServerProcess(root, *flags) as pdp:
        assert pdp.address is not None
        wait_for(lambda: list(cache.glob("*.tar.gz")), what="the cache written")
        assert not status(pdp.address).from_cache
    (root / "policies.cedar").write_text("permit(principal")  # broken on the next start
    with ServerProcess(root, *flags) as pdp:
        assert pdp.address is not None
        cached = status(pdp.address)
        assert (cached.serving, cached.bundle_revision, cached.from_cache) == (True, "d1", True)
        assert cached.bundle_source == str(root)
    run = subprocess.run(
        [sys.executable, "-m", "pdp", "serve", str(root), "--decision-log", "off"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3  # without the cache: as before
