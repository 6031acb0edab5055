"""routes.yaml for tests: one with every identity source and one route, loading it for its
problems, and the path-confusion suite over the example bundle's routes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from pdp.bundle import CompiledBundle, load_bundle
from pdp.errors import BundleError
from tests.support.gateway import bundle_with

BASE = """\
identity:
  jwt:
    issuers:
      - issuer: https://auth.shop.example/
        audiences: [orders-api]
        algorithms: [ES256]
        jwks:
          file: keys/orders.jwks.json
        principal:
          type: User
          roles_claim: roles
          role_type: Role
          attributes:
            email: email
  mtls:
    principal_type: Service
  api_keys:
    keys:
      - name: reporting
        hash: sha256:436cf67a97b68d986eaa435a841068a21456f45959a1dbaf70a41dee9c008c8b
        principal: ApiClient::"reporting"
  anonymous: Anonymous::"anonymous"
routes:
  - name: read-order
    method: GET
    path: /api/orders/{orderId}
    action: readOrder
    resource: {type: Order, id: "{orderId}"}
"""


# (method, target) -> the route it must reach, or None: the path-confusion suite.
CONFUSION = [
    ("GET", "/api/users/43/orders", "list-user-orders"),
    ("GET", "/api/admin/users/43/orders", "admin-list-user-orders"),
    ("GET", "/api/admin/../users/43/orders", "list-user-orders"),
    ("GET", "/api/users/../admin/users/43/orders", "admin-list-user-orders"),
    ("GET", "/api//admin/users/43/orders", "admin-list-user-orders"),
    ("GET", "/api/admin//users/43/orders", "admin-list-user-orders"),
    ("GET", "/api/%2e%2e/api/admin/users/43/orders", "admin-list-user-orders"),
    ("GET", "/api/users/%2e%2e/admin/users/43/orders", "admin-list-user-orders"),
    ("GET", "/api/users/43/%2e%2e/44/orders", "list-user-orders"),
    ("GET", "/api/admin/users/43/orders/", "admin-list-user-orders"),
    ("GET", "/api/admin/users/43/orders//", "admin-list-user-orders"),
    ("GET", "/API/admin/users/43/orders", None),
    ("GET", "/api/ADMIN/users/43/orders", None),
    ("GET", "/Api/users/43/orders", None),
    ("GET", "/api/admin%2Fusers/43/orders", None),
    ("GET", "/api/users/43%2Forders", None),
    ("GET", "/api/admin;x=1/users/43/orders", None),
    ("GET", "/api/users/43;admin/orders", None),
    ("GET", "/api/users/43/orders;.js", None),
    ("GET", "/api/users/43/orders.json", None),
    ("GET", "/api/users/43", None),
    ("GET", "/api/users/43/orders/extra", None),
    ("get", "/api/users/43/orders", None),
    ("POST", "/api/users/43/orders", None),
    ("GET", "/internal/orders/o-1/reserve", None),
    ("POST", "/internal/orders/o-1/reserve", "reserve-stock"),
    ("POST", "/internal/orders/o-1/reserve?debug=1", "reserve-stock"),
    ("POST", "/api/../internal/orders/o-1/reserve", "reserve-stock"),
]


def load(tmp_path: Path, routes: str, files: dict[str, str] | None = None) -> CompiledBundle:
    """The example bundle with `routes` as its routes.yaml (and `files`), loaded."""
    target = Path(tempfile.mkdtemp(dir=tmp_path)) / "bundle"
    return load_bundle(bundle_with(target, routes, files or {}))


def problems(tmp_path: Path, routes: str, files: dict[str, str] | None = None) -> list[str]:
    """The problems that refuse such a bundle, every one of them located in routes.yaml."""
    with pytest.raises(BundleError) as info:
        load(tmp_path, routes, files)
    found = [str(p) for p in info.value.problems]
    assert all(p.startswith("routes.yaml") for p in found), found
    return found


def line_of(text: str, needle: str) -> int:
    """The first line of `text` holding `needle` (1-based)."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)
