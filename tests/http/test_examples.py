"""examples/traefik: the ForwardAuth middleware asks /forward-auth and replaces every header
pdp sets or routes.yaml strips (the header contract itself: test_forward_auth.py)."""

from __future__ import annotations

import re

import yaml

from tests.support.server import REPO

TRAEFIK = REPO / "examples" / "traefik"


def test_traefik_forward_auth_middleware() -> None:
    dynamic = yaml.safe_load((TRAEFIK / "dynamic.yml").read_text())
    middleware = dynamic["http"]["middlewares"]["pdp"]["forwardAuth"]
    assert middleware["address"].endswith("/forward-auth")
    assert middleware["trustForwardHeader"] is False
    routes = yaml.safe_load((REPO / "policies" / "routes.yaml").read_text())
    stripped = set(routes["responses"]["strip_headers"])
    assert {"x-pdp-principal", "x-pdp-decision-id"} | stripped <= set(
        middleware["authResponseHeaders"]
    )
    pattern = re.compile(middleware["authResponseHeadersRegex"])
    assert pattern.match("X-Pdp-Anything") and not pattern.match("authorization")
    router = dynamic["http"]["routers"]["orders"]
    assert router["middlewares"] == ["pdp"]
    static = yaml.safe_load((TRAEFIK / "traefik.yml").read_text())
    assert static["providers"]["file"]["filename"].endswith("dynamic.yml")
