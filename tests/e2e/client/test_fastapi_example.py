"""examples/fastapi: the service guards GET /orders/{id} and GET /orders with a real pdp, as a
sidecar (pdp.client) and embedded (pdp.embedded): the same answers either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from examples.fastapi.app import create_app
from pdp.client import AuthorizerClient
from pdp.embedded import Authorizer
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import ServerProcess

# One worker runs the module (xdist --dist loadgroup): its shared servers start once.
pytestmark = pytest.mark.xdist_group("fastapi-example")


@pytest.fixture(scope="module", params=["sidecar", "embedded"])
def service(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    if request.param == "sidecar":
        with ServerProcess(EXAMPLE_BUNDLE) as server:
            assert server.address is not None
            with AuthorizerClient(server.address) as pdp:
                yield TestClient(create_app(pdp))
    else:
        with Authorizer(EXAMPLE_BUNDLE, watch=False) as pdp:
            yield TestClient(create_app(pdp))


def _get(service: TestClient, path: str, principal: str | None) -> Any:
    headers = {"x-pdp-principal": principal} if principal else {}
    return service.get(path, headers=headers)


def test_the_owner_reads_their_order(service: TestClient) -> None:
    answer = _get(service, "/orders/o-5001", 'User::"42"')
    assert answer.status_code == 200
    assert answer.json()["owner"] == "42"


def test_another_users_order_is_403(service: TestClient) -> None:
    answer = _get(service, "/orders/o-5002", 'User::"42"')
    assert answer.status_code == 403
    assert "decision" in answer.json()["detail"]


def test_support_of_the_tenant_may_read_it(service: TestClient) -> None:
    assert _get(service, "/orders/o-5002", 'User::"support-sam"').status_code == 200
    assert _get(service, "/orders/o-5002", 'User::"support-gus"').status_code == 403


def test_missing_order_and_missing_caller(service: TestClient) -> None:
    assert _get(service, "/orders/o-9999", 'User::"42"').status_code == 404
    assert _get(service, "/orders/o-5001", None).status_code == 401


def test_the_list_is_filtered_by_a_query_plan(service: TestClient) -> None:
    mine = _get(service, "/orders", 'User::"42"').json()
    assert sorted(o["id"] for o in mine) == ["o-5001", "o-5003"]
    tenant = _get(service, "/orders", 'User::"support-sam"').json()
    assert sorted(o["id"] for o in tenant) == ["o-5001", "o-5002", "o-5003"]
    assert _get(service, "/orders", 'Anonymous::"anonymous"').json() == []
