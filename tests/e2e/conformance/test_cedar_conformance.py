"""Every shared Cedar conformance case decides exactly as Cedar does, through real gRPC."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from pdp.bundle import load_bundle
from pdp.errors import BundleError
from pdp.live.store import BundleStore
from pdp.v1 import authorizer_pb2 as pb
from tests.support.conformance import (
    Case,
    expected_ids,
    load_cases,
    positional_ids,
    write_bundle,
)
from tests.support.paths import CONFORMANCE
from tests.support.server import InProcessServer, ServerProcess, authorizer_stub

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []
PARTS = 4  # the cases in four tests, so that xdist can spread them over its workers
DECISIONS = {"allow": pb.DECISION_ALLOW, "deny": pb.DECISION_DENY}
EXACT_IN_A_DOUBLE = 2**53


def _uid(value: dict) -> pb.EntityUid:
    return pb.EntityUid(type=value["type"], id=value["id"])


def _request(item: dict, use_struct: bool) -> pb.IsAuthorizedRequest:
    request = pb.IsAuthorizedRequest(
        principal=_uid(item["principal"]),
        action=_uid(item["action"]),
        resource=_uid(item["resource"]),
    )
    if use_struct:
        request.context.CopyFrom(json_format.ParseDict(item["context"], struct_pb2.Struct()))
    else:
        request.context_json = json.dumps(item["context"])
    return request


def _fits_a_struct(value: object) -> bool:
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return abs(value) < EXACT_IN_A_DOUBLE
    if isinstance(value, list):
        return all(_fits_a_struct(v) for v in value)
    if isinstance(value, dict):
        return all(_fits_a_struct(v) for v in value.values())
    return False


def _check(case: Case, item: dict, response: pb.IsAuthorizedResponse, ids: dict, how: str) -> list:
    where = f"{case.name} [{how}] {item['description']!r}"
    failures = []
    if response.decision != DECISIONS[item["expected_decision"]]:
        failures.append(f"{where}: decision {pb.Decision.Name(response.decision)}")
    reasons = expected_ids(item.get("expected_reasons"), ids)
    if reasons is not None and set(response.determining_policies) != reasons:
        failures.append(f"{where}: reasons {list(response.determining_policies)} != {reasons}")
    erroring = expected_ids(item.get("expected_error_policies"), ids)
    if erroring is not None and set(response.erroring_policies) != erroring:
        failures.append(f"{where}: erroring {list(response.erroring_policies)} != {erroring}")
    return failures


def test_there_are_cases() -> None:
    assert len(CASES) == 422


@pytest.mark.parametrize("part", range(PARTS))
def test_every_case_decides_as_cedar_does_through_grpc(part: int, tmp_path: Path) -> None:
    """One real server; each case's bundle is loaded from files and activated via the store.

    Every PARTS-th case from `part` on: the parts together cover all 422 cases.
    """
    cases = CASES[part::PARTS]
    store = BundleStore()
    failures: list[str] = []
    decided = 0
    with InProcessServer(store) as server, authorizer_stub(server.address) as stub:
        for case in cases:
            validation = None if case.should_validate else "off"
            bundle = load_bundle(write_bundle(case, tmp_path / case.name, validation))
            store.activate(bundle)
            ids = positional_ids(bundle)
            batch = pb.BatchIsAuthorizedRequest()
            for item in case.requests:
                request = _request(item, use_struct=False)
                batch.requests.append(request)
                response = stub.IsAuthorized(request, timeout=10)
                assert response.bundle_revision == bundle.revision
                failures += _check(case, item, response, ids, "context_json")
                if _fits_a_struct(item["context"]):
                    response = stub.IsAuthorized(_request(item, use_struct=True), timeout=10)
                    failures += _check(case, item, response, ids, "struct")
                decided += 1
            results = stub.BatchIsAuthorized(batch, timeout=30).results
            assert len(results) == len(case.requests)
            for item, response in zip(case.requests, results, strict=True):
                failures += _check(case, item, response, ids, "batch")
    assert not failures, "\n".join(failures[:50])
    assert decided == sum(len(c.requests) for c in cases) > 0


@pytest.mark.parametrize("case", [c for c in CASES if not c.should_validate], ids=lambda c: c.name)
def test_invalid_policy_sets_are_refused_under_strict_validation(
    case: Case, tmp_path: Path
) -> None:
    with pytest.raises(BundleError) as refused:
        load_bundle(write_bundle(case, tmp_path / case.name))
    assert "schema validation" in str(refused.value)
    assert "policies.cedar:" in str(refused.value)


def _one_case_per_feature() -> list[Case]:
    """Templates, no schema, validation off, extension types, tags: what `pdp serve` loads."""
    features = [
        lambda c: (c.path / "links.json").is_file(),
        lambda c: not c.uses_schema,
        lambda c: not c.should_validate,
        lambda c: c.name.startswith("cit_ip"),
        lambda c: c.name.startswith("cit_decimal"),
        lambda c: c.name.startswith("ex_tags"),
    ]
    return [next(c for c in CASES if feature(c)) for feature in features]


def test_cases_through_pdp_serve_subprocess(tmp_path: Path) -> None:
    """The real CLI server on one case per feature; every case goes through gRPC above.

    The six servers start and stop side by side (each its own `pdp serve` on its own bundle).
    """
    cases = _one_case_per_feature()
    servers, ids = [], []
    for case in cases:
        validation = None if case.should_validate else "off"
        bundle_dir = write_bundle(case, tmp_path / case.name, validation)
        ids.append(positional_ids(load_bundle(bundle_dir)))
        servers.append(ServerProcess(bundle_dir))
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(ServerProcess.start, servers))
        for case, server, names in zip(cases, servers, ids, strict=True):
            assert server.address is not None
            with authorizer_stub(server.address) as stub:
                failures: list[str] = []
                for item in case.requests:
                    try:
                        response = stub.IsAuthorized(_request(item, use_struct=False), timeout=10)
                    except grpc.RpcError as exc:  # pragma: no cover - reported below
                        failures.append(f"{case.name}: {exc.code()} {exc.details()}")
                        continue
                    failures += _check(case, item, response, names, "pdp serve")
                assert not failures, "\n".join(failures)
    finally:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(_stop, servers))


def _stop(server: ServerProcess) -> None:
    if server.process is not None:
        server.stop()
