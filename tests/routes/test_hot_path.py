"""The routes' hot-path shortcuts (path normalization, id templates) give exactly what the
general code gives."""

from __future__ import annotations

import random
import re
from urllib.parse import parse_qsl

import pytest

from pdp.bundle import load_bundle
from pdp.errors import PathError
from pdp.routes.paths import decoded_segments, normalize
from pdp.routes.spec import IdTemplate
from tests.support.paths import EXAMPLE_BUNDLE

BUNDLE = load_bundle(EXAMPLE_BUNDLE)
PIECES = ["a", "Z", "9", "-", "_", "~", ".", "..", "/", "//", "%2e", "%2E", "%41", "%2f", "%5c"]
PIECES += ["%", "%zz", ";", "\\", "é", "%c3%a9", "%ff", "\x01", "@", ":", "!", "$", "?", "#"]


def _reference(target: str) -> tuple[str, ...] | None:
    """The segments the general decoder gives (None: refused), query and fragment cut."""
    raw, _, query = target.partition("?")
    try:
        parse_qsl(query.partition("#")[0], keep_blank_values=True, errors="strict")
        return tuple(decoded_segments(raw.partition("#")[0]))
    except (PathError, UnicodeDecodeError):
        return None


def test_plain_paths_normalize_as_the_general_decoder_does() -> None:
    rng = random.Random(6)
    targets = ["/", "/a", "/a/", "/a//b", "/.well-known/x", "/a/./b", "/a/../b", "/a.b/c.", "/..a"]
    for _ in range(5000):
        targets.append("/" + "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8))))
    plain = 0
    for target in targets:
        expected = _reference(target)
        try:
            found = normalize(target).segments
        except PathError:
            found = None
        assert found == expected, target
        plain += expected is not None and "/" + "/".join(expected) == target
    assert plain > 100  # the shortcut was taken, many times


@pytest.mark.parametrize(
    "template", ["{id}", "order-{id}", "{id}-{n}", "catalog", "{id}{n}", "{nope}", "{}", "{ id }"]
)
def test_id_templates_render_as_the_substitution_does(template: str) -> None:
    params = {"id": "o-1", "n": "7"}
    try:
        expected: str | None = re.sub(
            r"\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: params[m.group(1)], template
        )
    except KeyError:
        expected = None
    try:
        found: str | None = IdTemplate(template).render(params)
    except KeyError:
        found = None
    assert found == expected
