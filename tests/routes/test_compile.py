"""routes.yaml's routes are checked at bundle load: every mistake is a `routes.yaml:LINE: message`.

The `identity:` section's checks: tests/authn/test_config.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from tests.support.cli import run_cli
from tests.support.gateway import bundle_with
from tests.support.routes import BASE, line_of, load, problems
from tests.support.server import REPO


def test_base_loads_with_principal_types_from_the_schema(tmp_path: Path) -> None:
    gateway = load(tmp_path, BASE).gateway
    assert gateway is not None
    assert gateway.identity.principal_types == ("User", "ApiClient", "Service", "Anonymous")
    (route,) = gateway.routes
    assert route.principal_types == {"User", "ApiClient", "Service", "Anonymous"}
    assert dict(route.context) == {
        "method": "method",
        "path": "path",
        "source_ip": "source_ip",
        "scopes": "scopes",
        "peer": "peer",
    }


def test_the_example_bundle_loads_with_its_routes() -> None:
    gateway = load_bundle(REPO / "policies").gateway
    assert gateway is not None
    names = [r.name for r in gateway.routes]
    assert "list-user-orders" in names and "admin-list-user-orders" in names
    assert "reserve-stock" in names


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("action: readOrder", "action: readOrdr", "- name: read-order", "unrecognized action"),
        ("type: Order, id", "type: Ordr, id", "- name: read-order", "unrecognized entity type"),
        ("type: Order, id", "type: Tenant, id", "- name: read-order", "none of the principal"),
        ('id: "{orderId}"', 'id: "{id}"', "resource:", "does not bind"),
        ("path: /api/orders/{orderId}", "path: /api/orders/{orderId", "path:", "parameter"),
        ("method: GET", "method: get", "method:", "HTTP method"),
    ],
)
def test_mistakes_are_located(
    tmp_path: Path, old: str, new: str, needle: str, message: str
) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    found = problems(tmp_path, text)
    line = line_of(text, needle)
    assert any(p.startswith(f"routes.yaml:{line}:") and message in p for p in found), found


def test_context_attribute_missing_from_the_schema(tmp_path: Path) -> None:
    text = BASE + "    context: {tenant_hint: query.tenant}\n"
    found = problems(tmp_path, text)
    line = line_of(text, "- name: read-order")
    assert any(
        p.startswith(f"routes.yaml:{line}:") and "'tenant_hint'" in p and "not in the context" in p
        for p in found
    ), found


def test_context_attribute_of_the_wrong_type(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "    context: {peer: source_ip}\n")
    assert any("'peer' (source_ip) has the wrong type" in p for p in found), found


def test_unknown_context_source(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "    context: {method: header.x-user}\n")
    assert any("unknown source 'header.x-user'" in p for p in found), found


def test_shadowed_route_is_an_error(tmp_path: Path) -> None:
    text = BASE + (
        "  - name: read-order-again\n"
        "    method: [GET]\n"
        "    path: /api/orders/{id}\n"
        "    action: readOrder\n"
        '    resource: {type: Order, id: "{id}"}\n'
    )
    found = problems(tmp_path, text)
    assert any("'read-order-again' is unreachable" in p for p in found), found


def test_invalid_yaml_and_duplicate_keys_name_their_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "routes: [\n")[0].startswith("routes.yaml:2:")
    text = BASE.replace("  anonymous:", '  anonymous: Anonymous::"a"\n  anonymous:')
    found = problems(tmp_path, text)
    assert any("duplicate key 'anonymous'" in p for p in found), found


def test_a_key_that_is_not_a_plain_value_is_a_located_problem(tmp_path: Path) -> None:
    # routes.yaml is read by pdp.yamlsrc like every YAML file: a complex key is refused with
    # its line, never a TypeError out of the loader.
    assert problems(tmp_path, "? [a, b]\n: c\nroutes: []\n") == [
        "routes.yaml:1:3: invalid YAML: a mapping key must be a plain value"
    ]


def test_without_a_schema_routes_are_not_schema_checked(tmp_path: Path) -> None:
    root = bundle_with(tmp_path / "bundle", BASE.replace("readOrder", "anything"))
    (root / "orders.cedarschema").unlink()
    (root / "manifest.yaml").write_text("name: no-schema\n")
    gateway = load_bundle(root).gateway
    assert gateway is not None and gateway.routes[0].principal_types is None


@pytest.mark.slow  # the CLI end to end
def test_pdp_check_reports_routes_problems(tmp_path: Path) -> None:
    root = bundle_with(tmp_path / "bundle", BASE.replace("[ES256]", "[none]"))
    done = run_cli("check", str(root))
    assert done.returncode == 3
    line = line_of(BASE, "algorithms:")
    assert f"routes.yaml:{line}: algorithm 'none'" in done.stdout + done.stderr
