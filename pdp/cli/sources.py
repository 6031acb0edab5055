"""Where `pdp serve` gets its bundle: a directory (watched) or a URL (polled), and the cache.

Both start the same way: the first bundle is loaded before the server listens; when the
source has none that loads, `--bundle-cache` supplies the last good one, else exit 3.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pdp.bundle import CompiledBundle, load_bundle
from pdp.bundle.signing import VerificationKey, load_verification_key
from pdp.cli import argtypes
from pdp.cli.common import EXIT_BUNDLE
from pdp.decisionlog.shadow import Shadow
from pdp.errors import BundleError, KeyFileError
from pdp.live import Lifecycle
from pdp.live.cache import BundleCache, CacheWriter, activate_cached
from pdp.live.fetch import Fetcher, check_url, is_url, redact
from pdp.live.reload import Reloader, bundle_present
from pdp.live.remote import POLL_SECONDS, RemoteBundle
from pdp.live.store import BundleStore
from pdp.live.watcher import make_watcher
from pdp.metrics import Metrics

log = logging.getLogger("pdp.serve")


@dataclass(frozen=True, slots=True)
class Source:
    """What keeps the store current (started with the server) and what SIGHUP calls."""

    components: list[Lifecycle]
    on_hangup: Callable[[], None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("bundle source (docs/hot-reload.md)")
    group.add_argument(
        "--verification-key",
        action="append",
        metavar="[KEY_ID=]PUB.pem",
        help="trusted public key for a URL source's signed archives (required for a URL; "
        "repeatable, for key rotation)",
    )
    group.add_argument(
        "--bundle-poll-interval",
        type=argtypes.seconds(0.1, 86_400),
        default=POLL_SECONDS,
        metavar="SECONDS",
        help="fetch a URL source this often, jittered by +-20%%; failures back off "
        "(default %(default)s)",
    )
    group.add_argument(
        "--allow-insecure-bundle-url",
        action="store_true",
        help="allow a plain http:// bundle URL to a host that is not loopback",
    )
    group.add_argument(
        "--shadow",
        metavar="CANDIDATE",
        help="decide every request again on this bundle (directory or URL, watched or polled "
        "like the live one), off the response path; answers come from the live bundle only",
    )
    group.add_argument(
        "--bundle-cache",
        metavar="DIR",
        help="keep the last activated bundle here; start on it (verified again) when the "
        "source has no bundle that loads",
    )


def check_arguments(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) for flags that do not fit the source (and the --shadow one)."""
    parser = args.parser
    urls = [(flag, text) for flag, text in (("", args.bundle), ("--shadow ", args.shadow)) if text]
    urls = [(flag, text) for flag, text in urls if is_url(text)]
    for flag, text in urls:
        try:
            check_url(text, args.allow_insecure_bundle_url)
        except ValueError as exc:
            parser.error(f"{flag}{exc}")
    if urls and not args.verification_key:
        parser.error("a bundle URL needs --verification-key: remote bundles are signed")
    if not urls and (args.verification_key or args.allow_insecure_bundle_url):
        parser.error("--verification-key and --allow-insecure-bundle-url are for a URL source")


@dataclass(frozen=True, slots=True)
class ShadowSource:
    """The shadow evaluation and what keeps its candidate bundle current."""

    shadow: Shadow
    components: list[Lifecycle]


def open_shadow(args: argparse.Namespace, metrics: Metrics) -> ShadowSource | int:
    """The `--shadow` candidate, loaded like a source of its own (no cache); exit 3 when it
    does not load at start."""
    store = BundleStore()
    candidate = argparse.Namespace(
        **{**vars(args), "bundle": args.shadow, "bundle_cache": None, "wait_for_bundle": False}
    )
    source = open_source(candidate, store, lambda result: None)
    if isinstance(source, int):
        return source
    shadow = Shadow(store, metrics)
    shadow.start()
    return ShadowSource(shadow, source.components)


def open_source(
    args: argparse.Namespace, store: BundleStore, on_fetch: Callable[[str], None]
) -> Source | int:
    """Load the first bundle and build what keeps it current; an exit code when it cannot."""
    if is_url(args.bundle):
        return _remote(args, store, on_fetch)
    return _directory(args, store)


def _remote(
    args: argparse.Namespace, store: BundleStore, on_fetch: Callable[[str], None]
) -> Source | int:
    try:
        keys: list[VerificationKey] = [load_verification_key(s) for s in args.verification_key]
    except KeyFileError as exc:
        log.error(str(exc), extra={"event": "start_failed", "exit_code": EXIT_BUNDLE})
        return EXIT_BUNDLE
    shown = redact(args.bundle)
    cache = BundleCache(args.bundle_cache, shown) if args.bundle_cache else None
    remote = RemoteBundle(
        Fetcher(args.bundle, args.allow_insecure_bundle_url),
        keys,
        store,
        cache,
        args.bundle_poll_interval,
        on_fetch,
    )
    if not remote.load_initial():
        if not args.wait_for_bundle:
            _no_bundle(shown, store.status.last_fetch_error or store.status.last_error)
            return EXIT_BUNDLE
        log.warning(
            "waiting for a bundle at %s (NOT_SERVING until then)",
            shown,
            extra={"event": "bundle_waiting", "url": shown},
        )
    return Source([remote], partial(remote.request, "SIGHUP"))


def _directory(args: argparse.Namespace, store: BundleStore) -> Source | int:
    store.set_source(args.bundle)
    cache = (
        BundleCache(args.bundle_cache, os.path.abspath(args.bundle)) if args.bundle_cache else None
    )
    reloader = Reloader(args.bundle, store)
    watcher = make_watcher(args.watch, args.bundle, reloader.request, args.poll_interval)
    if args.wait_for_bundle and not bundle_present(args.bundle):
        if cache is None or activate_cached(cache, None, store, _name(args.bundle)) is None:
            log.warning(
                "waiting for a bundle at %s (NOT_SERVING until then)",
                args.bundle,
                extra={"event": "bundle_waiting", "path": args.bundle},
            )
        if watcher is None:
            reloader.request("waiting for a bundle")
    else:
        bundle = load(args.bundle, fallback=cache is not None)
        if bundle is not None:
            store.activate(bundle)
        elif cache is None or activate_cached(cache, None, store, _name(args.bundle)) is None:
            return EXIT_BUNDLE
    if cache is not None:
        store.subscribe(CacheWriter(cache))
    components: list[Lifecycle] = [reloader] if watcher is None else [reloader, watcher]
    return Source(components, partial(reloader.request, "SIGHUP"))


def _name(path: str) -> str:
    return os.path.basename(os.path.abspath(path))


def _no_bundle(source: str, why: str) -> None:
    log.error(
        "bundle %s does not load, and no cached bundle can stand in",
        source,
        extra={
            "event": "bundle_load_failed",
            "url": source,
            "errors": why.splitlines(),
            "exit_code": EXIT_BUNDLE,
        },
    )


def load(path: str, fallback: bool = False) -> CompiledBundle | None:
    """The bundle at `path`, logged as `bundle_loaded`; None (logged) when it does not load
    (`fallback`: the bundle cache is tried next, so this is not the exit yet)."""
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        problems = sorted(exc.problems, key=lambda p: (p.file, p.line or 0, p.column or 0))
        extra: dict[str, object] = {
            "event": "bundle_load_failed",
            "path": path,
            "errors": [str(p) for p in problems],
            # A warning can explain an error (entity.json next to an unknown entity).
            "warnings": [str(w) for w in exc.warnings],
        }
        if not fallback:
            extra["exit_code"] = EXIT_BUNDLE
        log.error(
            "bundle %s does not load (%d problem(s))%s",
            path,
            len(problems),
            "; trying the bundle cache" if fallback else "",
            extra=extra,
        )
        return None
    log.log(
        logging.WARNING if bundle.warnings else logging.INFO,
        "bundle loaded",
        extra={
            "event": "bundle_loaded",
            "path": path,
            "bundle_name": bundle.name,
            "revision": bundle.revision,
            "policies": bundle.policy_count,
            "entities": bundle.entity_count,
            "warnings": [str(w) for w in bundle.warnings],
        },
    )
    return bundle
