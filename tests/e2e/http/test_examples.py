"""examples/traefik: the ForwardAuth middleware asks /forward-auth and replaces every header
pdp sets or routes.yaml strips (the header contract itself: test_forward_auth.py)."""

from __future__ import annotations

import re

import yaml

from pdp.bundle import load_bundle
from tests.support.server import REPO

TRAEFIK = REPO / "examples" / "traefik"
NGINX = REPO / "examples" / "nginx" / "nginx.conf"


def _replaced_headers() -> list[str]:
    """What pdp sets or removes upstream for the example bundle (Envoy does both itself)."""
    gateway = load_bundle(REPO / "policies").gateway
    assert gateway is not None
    names = gateway.responses
    return [names.principal_header, names.decision_id_header, *names.remove_headers]


def test_nginx_overwrites_or_clears_every_header_pdp_would() -> None:
    text = NGINX.read_text()
    for name in _replaced_headers():
        assert re.search(rf"^\s*proxy_set_header {re.escape(name)} (\$\w+|\"\");$", text, re.M), (
            name
        )


def test_traefik_forward_auth_middleware() -> None:
    dynamic = yaml.safe_load((TRAEFIK / "dynamic.yml").read_text())
    middleware = dynamic["http"]["middlewares"]["pdp"]["forwardAuth"]
    assert middleware["address"].endswith("/forward-auth")
    assert middleware["trustForwardHeader"] is False
    assert set(_replaced_headers()) <= set(middleware["authResponseHeaders"])
    pattern = re.compile(middleware["authResponseHeadersRegex"])
    assert pattern.match("X-Pdp-Anything") and not pattern.match("authorization")
    router = dynamic["http"]["routers"]["orders"]
    assert router["middlewares"] == ["pdp"]
    static = yaml.safe_load((TRAEFIK / "traefik.yml").read_text())
    assert static["providers"]["file"]["filename"].endswith("dynamic.yml")
