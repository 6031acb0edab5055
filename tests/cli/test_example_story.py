"""The example bundle's BOLA/BFLA story, decided by `pdp authorize` as a reader would run it."""

from __future__ import annotations

import json

import pytest

from pdp.cli.main import main
from tests.support.bundles import run_pdp
from tests.support.cli import run_cli
from tests.support.paths import EXAMPLE_BUNDLE

CHECKOUT = 'Service::"spiffe://cluster.local/ns/shop/sa/checkout"'
INVENTORY = 'Service::"spiffe://cluster.local/ns/shop/sa/inventory"'
RECOMMENDATIONS = 'Service::"spiffe://cluster.local/ns/shop/sa/recommendations"'

# (principal, action, resource, decision, determining policies)
STORY = [
    # Users and their own orders (BOLA: the id in the URL is the attacker's choice).
    ('User::"42"', "readOrder", 'Order::"o-1001"', "allow", ["customer-read-own-order"]),
    ('User::"42"', "readOrder", 'Order::"o-1003"', "deny", []),
    ('User::"43"', "readOrder", 'Order::"o-1002"', "deny", []),
    ('User::"42"', "cancelOrder", 'Order::"o-1002"', "allow", ["customer-cancel-own-order"]),
    ('User::"42"', "cancelOrder", 'Order::"o-1003"', "deny", []),
    ('User::"42"', "listUserOrders", 'User::"42"', "allow", ["customer-list-own-orders"]),
    ('User::"42"', "listUserOrders", 'User::"43"', "deny", []),
    ('User::"404"', "readOrder", 'Order::"o-1001"', "deny", []),
    # The delegated read: one link grants User 43 one order of User 42, and nothing more.
    ('User::"43"', "readOrder", 'Order::"o-1001"', "allow", ["delegate-o-1001-to-43"]),
    ('User::"43"', "cancelOrder", 'Order::"o-1001"', "deny", []),
    # Support staff read within their tenant, never across, never refund or cancel.
    (
        'User::"support-sam"',
        "readOrder",
        'Order::"o-1003"',
        "allow",
        ["support-read-tenant-orders"],
    ),
    ('User::"support-sam"', "readOrder", 'Order::"o-2001"', "deny", []),
    (
        'User::"support-gus"',
        "readOrder",
        'Order::"o-2001"',
        "allow",
        ["support-read-tenant-orders"],
    ),
    ('User::"support-sam"', "cancelOrder", 'Order::"o-1003"', "deny", []),
    (
        'User::"support-sam"',
        "refundOrder",
        'Order::"o-1003"',
        "deny",
        ["admin-functions-require-admin"],
    ),
    # Admin functions (BFLA: knowing the admin URL is not a right to call it).
    ('User::"42"', "adminListUserOrders", 'User::"43"', "deny", ["admin-functions-require-admin"]),
    ('User::"42"', "refundOrder", 'Order::"o-1001"', "deny", ["admin-functions-require-admin"]),
    (
        'User::"admin-ada"',
        "adminListUserOrders",
        'User::"43"',
        "allow",
        ["admin-call-admin-functions"],
    ),
    (
        'User::"admin-ada"',
        "refundOrder",
        'Order::"o-2001"',
        "allow",
        ["admin-call-admin-functions"],
    ),
    (
        'ApiClient::"reporting"',
        "refundOrder",
        'Order::"o-1001"',
        "deny",
        ["admin-functions-require-admin"],
    ),
    # Workloads: reserveStock by role or by pinned SPIFFE id; nobody else.
    (CHECKOUT, "reserveStock", 'Order::"o-1001"', "allow", ["checkout-reserve-stock"]),
    (INVENTORY, "reserveStock", 'Order::"o-1001"', "allow", ["stock-service-reserve-stock"]),
    (RECOMMENDATIONS, "reserveStock", 'Order::"o-1001"', "deny", []),
    (
        'User::"admin-ada"',
        "reserveStock",
        'Order::"o-1001"',
        "deny",
        ["reserve-stock-services-only"],
    ),
    (
        'ApiClient::"reporting"',
        "reserveStock",
        'Order::"o-1001"',
        "deny",
        ["reserve-stock-services-only"],
    ),
    (CHECKOUT, "readOrder", 'Order::"o-1001"', "deny", []),
    # Anonymous callers may do nothing.
    ('Anonymous::"anonymous"', "readOrder", 'Order::"o-1001"', "deny", ["anonymous-denied"]),
    ('Anonymous::"anonymous"', "listUserOrders", 'User::"42"', "deny", ["anonymous-denied"]),
    (
        'Anonymous::"anonymous"',
        "reserveStock",
        'Order::"o-1001"',
        "deny",
        ["anonymous-denied", "reserve-stock-services-only"],
    ),
]


def argv(principal: str, action: str, resource: str) -> list[str]:
    return [
        "authorize",
        str(EXAMPLE_BUNDLE),
        "--principal",
        principal,
        "--action",
        f'Action::"{action}"',
        "--resource",
        resource,
        "--json",
    ]


@pytest.mark.parametrize(("principal", "action", "resource", "decision", "policies"), STORY)
def test_story(
    capsys: pytest.CaptureFixture[str],
    principal: str,
    action: str,
    resource: str,
    decision: str,
    policies: list[str],
) -> None:
    code = main(argv(principal, action, resource))
    result = json.loads(capsys.readouterr().out)
    assert (result["decision"], sorted(result["determining_policies"])) == (
        decision,
        sorted(policies),
    )
    assert (result["errors"], result["erroring_policies"]) == ([], [])
    assert code == (0 if decision == "allow" else 5)


def test_headline_bola_and_bfla_through_the_real_cli() -> None:
    """The four lines of the README: the allow (exit 0) and the deny (exit 5) run as a user
    runs them, a `pdp` process each; the other two are the same command in this process."""
    own = run_pdp(*argv('User::"42"', "readOrder", 'Order::"o-1001"'))
    assert (own.returncode, json.loads(own.stdout)["decision"]) == (0, "allow")
    bola = run_pdp(*argv('User::"42"', "readOrder", 'Order::"o-1003"'))
    assert (bola.returncode, json.loads(bola.stdout)["decision"]) == (5, "deny")
    bfla = run_cli(*argv('User::"42"', "adminListUserOrders", 'User::"43"'))
    assert bfla.returncode == 5
    assert json.loads(bfla.stdout)["determining_policies"] == ["admin-functions-require-admin"]
    admin = run_cli(*argv('User::"admin-ada"', "adminListUserOrders", 'User::"43"'))
    assert (admin.returncode, json.loads(admin.stdout)["decision"]) == (0, "allow")
