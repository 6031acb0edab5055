"""Path normalization and route matching: every path trick reaches its intended route or none."""

from __future__ import annotations

import pytest

from pdp.bundle import load_bundle
from pdp.errors import PathError
from pdp.routes.paths import normalize
from pdp.routes.spec import match_route, parse_template
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.routes import CONFUSION

ROUTES = load_bundle(EXAMPLE_BUNDLE).gateway.routes  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/api/users/43/orders", "/api/users/43/orders", ()),
        ("/api//users///43/orders", "/api/users/43/orders", ()),
        ("/api/users/43/orders/", "/api/users/43/orders", ()),
        ("/api/./users/43/./orders", "/api/users/43/orders", ()),
        ("/api/admin/../users/43/orders", "/api/users/43/orders", ()),
        ("/api/%2e%2e/api/users/43/orders", "/api/users/43/orders", ()),
        ("/api/%2E%2e/api/users/43/orders", "/api/users/43/orders", ()),
        ("/api/users/%34%33/orders", "/api/users/43/orders", ()),
        (
            "/api/users/43/orders?status=open&a=1&a=2",
            "/api/users/43/orders",
            (
                ("status", "open"),
                ("a", "1"),
                ("a", "2"),
            ),
        ),
        (
            "/api/users/43/orders?next=%2Fapi%2Fadmin",
            "/api/users/43/orders",
            (("next", "/api/admin"),),
        ),
        ("/api/users/43/orders#frag", "/api/users/43/orders", ()),
        ("/", "/", ()),
        ("/a/%E2%82%AC", "/a/\u20ac", ()),
    ],
)
def test_normalize(target: str, path: str, query: tuple) -> None:
    normalized = normalize(target)
    assert normalized.path == path
    assert normalized.query == query


@pytest.mark.parametrize(
    "target",
    [
        "/api%2Fadmin/users/43/orders",  # an encoded slash would be a segment boundary upstream
        "/api%2fadmin",
        "/api%5Cadmin",
        "/api\\admin",
        "/api/admin;jsessionid=1/users/43/orders",
        "/api/admin%3B/users",
        "/api/%00/x",
        "/api/\x01",
        "/api/%zz",
        "/api/%e2%82",
        "/..",
        "/api/../../etc/passwd",
        "api/users",
        "",
        "/" + "a" * 70_000,  # over MAX_PATH_BYTES
    ],
)
def test_refused(target: str) -> None:
    with pytest.raises(PathError):
        normalize(target)


@pytest.mark.parametrize(("method", "target", "route"), CONFUSION)
def test_path_confusion_reaches_intended_route_or_none(
    method: str, target: str, route: str | None
) -> None:
    try:
        path = normalize(target)
    except PathError:
        assert route is None
        return
    match = match_route(ROUTES, method, path)
    assert (match.route.name if match else None) == route


def test_parameters_are_bound_from_decoded_segments() -> None:
    match = match_route(ROUTES, "GET", normalize("/api/users/%34%32/orders"))
    assert match is not None and dict(match.params) == {"userId": "42"}


def test_parameter_regex_must_match_the_whole_segment() -> None:
    template = parse_template("/orders/{id:o-[0-9]+}")
    assert template.match(["orders", "o-17"]) == {"id": "o-17"}
    assert template.match(["orders", "o-17x"]) is None
    assert template.match(["orders", "x-o-17"]) is None


@pytest.mark.parametrize(
    "text", ["api/x", "/a/{", "/a/{b}{c}", "/a/x{b}", "/a/../b", "/a//b", "/a/{b:(}", "/{x}/{x}"]
)
def test_bad_templates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_template(text)
