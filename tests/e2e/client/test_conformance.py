"""The whole shared Cedar conformance set through pdp.client and pdp.embedded, answered exactly
as the gRPC server answers it (decision, reasons, erroring policies, errors, revision)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from pdp.client import AuthorizerClient, Decision, Request
from pdp.embedded import Authorizer
from pdp.live.store import BundleStore
from pdp.v1 import authorizer_pb2 as pb
from tests.support.conformance import expected_ids, load_cases, positional_ids, write_bundle
from tests.support.paths import CONFORMANCE
from tests.support.server import InProcessServer, authorizer_stub

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

PARTS = 4  # the cases in four tests, so that xdist can spread them over its workers


def _uid(value: dict) -> tuple[str, str]:
    return (value["type"], value["id"])


def _request(item: dict) -> pb.IsAuthorizedRequest:
    return pb.IsAuthorizedRequest(
        principal=pb.EntityUid(**item["principal"]),
        action=pb.EntityUid(**item["action"]),
        resource=pb.EntityUid(**item["resource"]),
        context_json=json.dumps(item["context"]),
    )


def _decision(response: pb.IsAuthorizedResponse) -> Decision:
    """A raw gRPC answer, read here (not by pdp.client): the reference the others must equal."""
    return Decision(
        allowed=response.decision == pb.DECISION_ALLOW,
        decision_id=response.decision_id,
        determining_policies=tuple(response.determining_policies),
        errors=tuple(response.errors),
        erroring_policies=tuple(response.erroring_policies),
        bundle_revision=response.bundle_revision,
    )


def _same(got: Decision, expected: Decision) -> bool:
    """Equal answers; policy ids and errors as sets (Cedar reports them in no fixed order)."""
    return (
        got.allowed,
        sorted(got.determining_policies),
        sorted(got.erroring_policies),
        sorted(got.errors),
        got.bundle_revision,
    ) == (
        expected.allowed,
        sorted(expected.determining_policies),
        sorted(expected.erroring_policies),
        sorted(expected.errors),
        expected.bundle_revision,
    )


def test_there_are_cases() -> None:
    assert len(CASES) == 422


@pytest.mark.parametrize("part", range(PARTS))
def test_client_and_embedded_answer_every_case_as_the_grpc_server(
    part: int, tmp_path: Path
) -> None:
    """Every PARTS-th case from `part` on (the parts together cover all 422 cases).

    The reference is the server's raw BatchIsAuthorized answer, read without pdp.client; every
    request is also asked one at a time through the client and the embedded authorizer (the
    single-call path), and as a batch through both.
    """
    cases = CASES[part::PARTS]
    store = BundleStore()
    failures: list[str] = []
    decided = 0
    ids: set[str] = set()
    with (
        InProcessServer(store) as server,
        authorizer_stub(server.address) as stub,
        AuthorizerClient(server.address, timeout=10) as client,
    ):
        for case in cases:
            folder = write_bundle(
                case, tmp_path / case.name, None if case.should_validate else "off"
            )
            bundle = load_bundle(folder)
            store.activate(bundle)
            names = positional_ids(bundle)
            items = case.requests
            raw = stub.BatchIsAuthorized(
                pb.BatchIsAuthorizedRequest(requests=[_request(i) for i in items]), timeout=30
            ).results
            assert len(raw) == len(items)
            with Authorizer(folder, watch=False) as embedded:
                questions = [
                    Request(
                        _uid(i["principal"]), _uid(i["action"]), _uid(i["resource"]), i["context"]
                    )
                    for i in items
                ]
                via_client_batch = client.batch_is_authorized(questions)
                via_embedded_batch = embedded.batch_is_authorized(questions)
                for index, item in enumerate(items):
                    where = f"{case.name} {item['description']!r}"
                    expected = _decision(raw[index])
                    args = (_uid(item["principal"]), _uid(item["action"]), _uid(item["resource"]))
                    answers = {
                        "client": client.is_authorized(*args, context=item["context"]),
                        "embedded": embedded.is_authorized(*args, context=item["context"]),
                        "client batch": via_client_batch[index],
                        "embedded batch": via_embedded_batch[index],
                    }
                    for how, got in answers.items():
                        if not _same(got, expected):
                            failures.append(f"{where} [{how}]: {got} != {expected}")
                        if not UUID4.match(got.decision_id) or got.decision_id in ids:
                            failures.append(f"{where} [{how}]: decision id {got.decision_id!r}")
                        ids.add(got.decision_id)
                    if expected.bundle_revision != bundle.revision:
                        failures.append(f"{where}: revision {expected.bundle_revision}")
                    if expected.allowed != (item["expected_decision"] == "allow"):
                        failures.append(f"{where}: decision is not Cedar's")
                    reasons = expected_ids(item.get("expected_reasons"), names)
                    if reasons is not None and set(expected.determining_policies) != reasons:
                        failures.append(f"{where}: reasons {expected.determining_policies}")
                    decided += 1
    assert not failures, "\n".join(failures[:40])
    assert decided == sum(len(c.requests) for c in cases) > 0
