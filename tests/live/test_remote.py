"""Remote bundles against a real nginx: ETags, 304s, refusals that keep the last good, cache."""

from __future__ import annotations

import shutil
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pdp.bundle.archive import SIGNATURES, read_archive
from pdp.bundle.signing import load_verification_key
from pdp.errors import FetchError
from pdp.live.cache import BundleCache
from pdp.live.fetch import Fetcher, check_url, redact
from pdp.live.remote import FAILED, NOT_MODIFIED, REJECTED, UPDATED, RemoteBundle, next_delay
from pdp.live.store import BundleStore
from tests.support.archives import (
    KeyPair,
    Member,
    example_archive,
    raw_archive,
    rebuild,
    signing_key,
    write_key,
)
from tests.support.bundle_server import BundleServer, bundle_server
from tests.support.paths import EXAMPLE_BUNDLE

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("remote")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundleServer]:
    with bundle_server(tmp_path_factory.mktemp("nginx")) as running:
        yield running


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    folder = tmp_path_factory.mktemp("keys")
    return {"good": write_key(folder, "ec", "good"), "other": write_key(folder, "ec", "other")}


@pytest.fixture(scope="module")
def archives(
    keys: dict[str, KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    """v1 (the example), v2 (one policy changed), and hostile variants of v1."""
    key = signing_key(keys["good"])
    copy = tmp_path_factory.mktemp("v2") / "orders"
    shutil.copytree(EXAMPLE_BUNDLE, copy)
    manifest = copy / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "revision: v2\n")
    v1 = example_archive(key)
    files = read_archive(v1)
    tampered = dict(files, **{"baseline.cedar": files["baseline.cedar"] + b"\n// changed\n"})
    unsigned = {k: v for k, v in files.items() if k != SIGNATURES}
    escaping = raw_archive([Member("../../escape.cedar", b"permit(principal,action,resource);")])
    return {
        "v1": v1,
        "v2": example_archive(key, copy),
        "tampered": rebuild(tampered),
        "unsigned": rebuild(unsigned),
        "wrong-key": example_archive(signing_key(keys["other"])),
        "escaping": escaping,
    }


def remote(
    url: str, keys: dict[str, KeyPair], store: BundleStore, **kwargs: object
) -> tuple[RemoteBundle, list[str]]:
    seen: list[str] = []
    trusted = [load_verification_key(str(keys["good"].public))]
    fetcher = kwargs.pop("fetcher", None) or Fetcher(url, timeout=5)
    bundle = RemoteBundle(fetcher, trusted, store, on_fetch=seen.append, **kwargs)  # type: ignore[arg-type]
    return bundle, seen


def test_new_archives_activate_and_an_unchanged_one_costs_a_304(
    server: BundleServer, keys: dict[str, KeyPair], archives: dict[str, bytes]
) -> None:
    server.publish(archives["v1"], "etag.tar.gz")
    store = BundleStore()
    source, seen = remote(server.url("etag.tar.gz"), keys, store)
    assert source.load_initial()
    first = store.current
    assert first is not None and first.name == "orders-api"
    before = len(server.requests())
    assert source.poll_once() == NOT_MODIFIED
    assert '"GET /etag.tar.gz HTTP/1.1" 304' in server.requests_after(before)[0]
    assert store.current is first
    server.publish(archives["v2"], "etag.tar.gz")
    assert source.poll_once() == UPDATED
    assert store.current is not None and store.current.revision == "v2"
    assert seen == [UPDATED, NOT_MODIFIED, UPDATED]
    status = store.status
    assert status.source == redact(server.url("etag.tar.gz"))
    assert status.last_fetch_error == "" and status.last_fetch_at is not None
    assert not status.from_cache


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("tampered", "baseline.cedar: does not match its signed SHA-256"),
        ("unsigned", "archive is not signed"),
        ("wrong-key", "does not verify with any trusted key"),
        ("escaping", "climbs out of the bundle"),
    ],
)
def test_a_refused_archive_keeps_the_last_good_revision(
    server: BundleServer,
    keys: dict[str, KeyPair],
    archives: dict[str, bytes],
    variant: str,
    expected: str,
) -> None:
    name = f"refused-{variant}.tar.gz"
    server.publish(archives["v1"], name)
    store = BundleStore()
    source, seen = remote(server.url(name), keys, store)
    assert source.load_initial()
    good = store.current
    server.publish(archives[variant], name)
    assert source.poll_once() == REJECTED
    assert store.current is good
    assert expected in store.status.last_fetch_error
    assert expected in store.status.last_error
    # The same refused archive is not downloaded again: a 304, still reported as refused.
    assert source.poll_once() == NOT_MODIFIED
    assert expected in store.status.last_fetch_error
    server.publish(archives["v2"], name)
    assert source.poll_once() == UPDATED
    assert store.status.last_fetch_error == "" and store.status.last_error == ""
    assert seen == [UPDATED, REJECTED, NOT_MODIFIED, UPDATED]


def test_an_unreachable_or_missing_archive_fails_and_backs_off(
    server: BundleServer, keys: dict[str, KeyPair]
) -> None:
    store = BundleStore()
    source, seen = remote(server.url("absent.tar.gz"), keys, store)
    assert not source.load_initial()
    assert "HTTP 404" in store.status.last_fetch_error
    assert source.poll_once() == FAILED
    assert source.failures == 2
    assert seen == [FAILED, FAILED]


def test_the_cache_serves_when_the_source_cannot(
    server: BundleServer, keys: dict[str, KeyPair], archives: dict[str, bytes], tmp_path: Path
) -> None:
    server.publish(archives["v2"], "cached.tar.gz")
    url = server.url("cached.tar.gz")
    cache = BundleCache(str(tmp_path / "cache"), redact(url))
    store = BundleStore()
    source, _ = remote(url, keys, store, cache=cache)
    assert source.load_initial()
    assert Path(cache.path).read_bytes() == archives["v2"]
    (server.root / "cached.tar.gz").unlink()  # the source is gone

    restarted = BundleStore()
    again, seen = remote(url, keys, restarted, cache=cache)
    assert again.load_initial()
    assert seen == [FAILED]
    assert restarted.status.from_cache
    assert restarted.current is not None and restarted.current.revision == "v2"

    server.publish(archives["v2"], "cached.tar.gz")  # the source has it again
    assert again.poll_once() == NOT_MODIFIED
    assert not restarted.status.from_cache


def test_a_tampered_cache_is_refused_too(
    server: BundleServer, keys: dict[str, KeyPair], archives: dict[str, bytes], tmp_path: Path
) -> None:
    url = server.url("never-there.tar.gz")
    cache = BundleCache(str(tmp_path / "cache"), redact(url))
    Path(cache.folder).mkdir()
    Path(cache.path).write_bytes(archives["tampered"])
    store = BundleStore()
    source, _ = remote(url, keys, store, cache=cache)
    assert not source.load_initial()
    assert store.current is None


def test_a_cache_of_another_source_is_not_used(
    server: BundleServer, keys: dict[str, KeyPair], archives: dict[str, bytes], tmp_path: Path
) -> None:
    folder = str(tmp_path / "cache")
    BundleCache(folder, "https://elsewhere/b.tar.gz").save(archives["v1"], "r")
    store = BundleStore()
    url = server.url("never-there.tar.gz")
    source, _ = remote(url, keys, store, cache=BundleCache(folder, redact(url)))
    assert not source.load_initial()


def test_https_is_verified(server: BundleServer, archives: dict[str, bytes]) -> None:
    server.publish(archives["v1"], "tls.tar.gz")
    trusted = ssl.create_default_context(cafile=str(server.ca_file))
    fetched = Fetcher(server.https_url("tls.tar.gz"), context=trusted, timeout=5).fetch()
    assert fetched.data == archives["v1"] and fetched.etag
    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
        Fetcher(server.https_url("tls.tar.gz"), timeout=5).fetch()  # the system CAs only


def test_https_never_redirects_to_http(server: BundleServer, archives: dict[str, bytes]) -> None:
    server.publish(archives["v1"])
    trusted = ssl.create_default_context(cafile=str(server.ca_file))
    with pytest.raises(FetchError, match="https may only go to https"):
        Fetcher(server.https_url("to-http.tar.gz"), context=trusted, timeout=5).fetch()


def test_loopback_http_may_redirect_on_loopback(
    server: BundleServer, archives: dict[str, bytes]
) -> None:
    server.publish(archives["v1"])
    assert Fetcher(server.url("moved.tar.gz"), timeout=5).fetch().data == archives["v1"]


def test_the_size_is_bounded(server: BundleServer, archives: dict[str, bytes]) -> None:
    server.publish(archives["v1"], "big.tar.gz")
    with pytest.raises(FetchError, match="over the limit of 100"):
        Fetcher(server.url("big.tar.gz"), max_bytes=100, timeout=5).fetch()


class _Hostile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        targets = {"/file": "file:///etc/passwd", "/far": "http://203.0.113.7/b.tar.gz"}
        if self.path == "/nolength":  # no Content-Length: counted while read
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            return
        self.send_response(302)
        self.send_header("Location", targets[self.path])
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_redirects_to_file_or_to_plain_http_elsewhere_are_refused(hostile: str) -> None:
    with pytest.raises(FetchError, match="redirect refused") as caught:
        Fetcher(f"{hostile}/file", timeout=5).fetch()
    assert "passwd" not in str(caught.value)  # the target is not echoed into logs
    with pytest.raises(FetchError, match="plain http is only allowed for a loopback"):
        Fetcher(f"{hostile}/far", timeout=5).fetch()


def test_a_body_without_length_is_bounded_while_read(hostile: str) -> None:
    with pytest.raises(FetchError, match="over the limit of 1000"):
        Fetcher(f"{hostile}/nolength", max_bytes=1000, timeout=5).fetch()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://bundles.example/b.tar.gz", True),
        ("http://127.0.0.1:8080/b.tar.gz", True),
        ("http://localhost/b.tar.gz", True),
        ("http://[::1]/b.tar.gz", True),
        ("http://bundles.example/b.tar.gz", False),
        ("http://127.0.0.1.evil.example/b.tar.gz", False),
        ("file:///etc/passwd", False),
        ("ftp://host/b.tar.gz", False),
        ("https:///nohost", False),
    ],
)
def test_which_urls_are_sources(url: str, allowed: bool) -> None:
    if allowed:
        check_url(url)
    else:
        with pytest.raises(ValueError):
            check_url(url)
    check_url("http://bundles.example/b.tar.gz", allow_insecure=True)


def test_urls_are_shown_without_secrets() -> None:
    shown = redact("https://user:s3cret@host:8443/b.tar.gz?token=abc#frag")
    assert shown == "https://host:8443/b.tar.gz?..."
    assert "s3cret" not in shown and "abc" not in shown


def test_polling_is_jittered_and_failures_back_off_within_bounds() -> None:
    assert next_delay(30, 0, 0.0, 300) == pytest.approx(24)
    assert next_delay(30, 0, 0.999999, 300) == pytest.approx(36, rel=1e-4)
    nominal = [next_delay(30, n, 0.5, 300) for n in range(8)]
    assert nominal == [30, 60, 120, 240, 300, 300, 300, 300]
    assert next_delay(600, 3, 0.5, 300) == 600  # never below the interval
    assert next_delay(1, 10_000, 0.5, 300) == 300  # no overflow
