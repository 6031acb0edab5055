"""Every shared Cedar conformance case answers the same through the decision cache: cold (a
miss), warm (a hit) and in a batch, as the engine does without it, and as Cedar expects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pdp import engine
from pdp.bundle import load_bundle
from pdp.decisioncache import DecisionCache
from pdp.errors import RequestError
from pdp.model import AuthzRequest, Decision, EntityRef
from tests.support.conformance import expected_ids, load_cases, positional_ids, write_bundle
from tests.support.paths import CONFORMANCE

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []


def _request(item: dict[str, Any], structured: bool) -> AuthzRequest:
    def uid(value: dict[str, str]) -> EntityRef:
        return EntityRef(value["type"], value["id"])

    context = item["context"]
    return AuthzRequest(
        principal=uid(item["principal"]),
        action=uid(item["action"]),
        resource=uid(item["resource"]),
        context=context if structured else None,
        context_json=None if structured else json.dumps(context),
    )


def _answer(decision: Decision | RequestError) -> tuple[Any, ...]:
    if isinstance(decision, RequestError):
        return ("error", str(decision))
    d = decision
    return (d.allowed, d.determining_policies, d.erroring_policies, d.errors, d.bundle_revision)


def _decide(decide: Any, *args: Any) -> Decision | RequestError:
    try:
        return decide(*args)  # type: ignore[no-any-return]
    except RequestError as exc:
        return exc


def test_every_case_answers_the_same_cold_warm_and_batched(tmp_path: Path) -> None:
    assert CASES
    failures: list[str] = []
    hits = 0
    for case in CASES:
        validation = None if case.should_validate else "off"
        bundle = load_bundle(write_bundle(case, tmp_path / case.name, validation))
        cache = DecisionCache(1000)
        cache.activate(bundle)
        ids = positional_ids(bundle)
        requests = []
        for item in case.requests:
            where = f"{case.name} {item['description']!r}"
            for structured in (False, True):
                request = _request(item, structured)
                requests.append(request)
                plain = _decide(engine.decide, bundle, request)
                cold = _decide(cache.decide, bundle, request)
                warm = _decide(cache.decide, bundle, request)
                if not _answer(plain) == _answer(cold) == _answer(warm):
                    failures.append(
                        f"{where}: {_answer(plain)} / {_answer(cold)} / {_answer(warm)}"
                    )
                    continue
                if isinstance(warm, RequestError):
                    continue
                hits += warm.cached
                if warm.word != item["expected_decision"]:
                    failures.append(f"{where}: {warm.word} through the cache")
                reasons = expected_ids(item.get("expected_reasons"), ids)
                if reasons is not None and set(warm.determining_policies) != reasons:
                    failures.append(f"{where}: reasons {warm.determining_policies} != {reasons}")
        plain_batch = engine.decide_batch(bundle, requests, None)
        for _ in range(2):
            cached_batch = cache.decide_batch(bundle, requests, None)
            if [_answer(d) for d in cached_batch] != [_answer(d) for d in plain_batch]:
                failures.append(f"{case.name}: the batch answers differ through the cache")
    assert not failures, "\n".join(failures[:50])
    assert hits >= sum(len(c.requests) for c in CASES)
