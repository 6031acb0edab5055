"""The Cedar context a route builds: every source, hostile parts dropped."""

from __future__ import annotations

from pdp.routes.context import RequestFacts, build_context
from pdp.routes.paths import normalize
from tests.support.gateway import CHECKOUT


def test_context_sources() -> None:
    facts = RequestFacts(
        method="GET",
        path=normalize("/a/b?x=1&x=2&__entity=evil&y="),
        host="shop.example",
        source_ip="2001:db8::1",
        peer=CHECKOUT,
        scopes=("orders:read",),
        identity="jwt",
        claims={"tier": "gold", "n": 7, "obj": {"__extn": 1, "k": "v"}, "f": 1.5},
        params={"id": "o-1"},
    )
    spec = [
        ("method", "method"),
        ("path", "path"),
        ("host", "host"),
        ("scheme", "scheme"),
        ("source_ip", "source_ip"),
        ("scopes", "scopes"),
        ("peer", "peer"),
        ("who", "identity"),
        ("query", "query"),
        ("x", "query.x"),
        ("missing", "query.nope"),
        ("id", "param.id"),
        ("tier", "claim.tier"),
        ("n", "claim.n"),
        ("obj", "claim.obj"),
        ("f", "claim.f"),
    ]
    assert build_context(spec, facts) == {
        "method": "GET",
        "path": "/a/b",
        "host": "shop.example",
        "source_ip": {"__extn": {"fn": "ip", "arg": "2001:db8::1"}},
        "scopes": ["orders:read"],
        "peer": CHECKOUT,
        "who": "jwt",
        "query": {"x": "1", "y": ""},
        "x": "1",
        "id": "o-1",
        "tier": "gold",
        "n": 7,
        "obj": {"k": "v"},
    }
