"""protection.yaml: parsed with the bundle, every problem located, the documented example valid."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from pdp.bundle.protection import duration
from pdp.errors import BundleError
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.protection import protected_bundle

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protection.md"


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(BundleError) as caught:
        load_bundle(protected_bundle(tmp_path, text, orders=0))
    return [str(p) for p in caught.value.problems]


def test_the_documented_example_loads_with_the_example_bundle(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    example = next(b for b in blocks if "limits:" in b and "detectors:" in b)
    bundle = load_bundle(protected_bundle(tmp_path, example, orders=0))
    config = bundle.protection
    assert config is not None and config.limits and config.bola and config.token_spread
    assert config.auth_failures is not None


def test_every_problem_is_named_and_located(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """mode: enforced
allow:
  principals: ['nope']
  addresses: [300.0.0.1]
limits:
  - name: per user
    key: principle
    limit: 0
    window: 1 fortnight
    routes: [no-such-route]
  - {name: a, key: route, limit: true, window: 1m, bogus: 1}
  - {name: a, key: route, limit: 5, window: 0}
detectors:
  bola_enumeration: {window: 5m, distinct_ids: 100000, denied_fraction: 2, action: nuke}
  auth_failures: {window: 1m}
  token_spread: {window: 10m, addresses: 5, action: throttle, status: 200}
  extra: {}
""",
    )
    expected = [
        "protection.yaml:1: mode must be one of enforce, observe, not 'enforced'",
        "protection.yaml:2: allow.principals: 'nope' is not an entity uid",
        "protection.yaml:2: allow.addresses: '300.0.0.1' is not an IP address or CIDR block",
        "protection.yaml:6: limits[0].name must be 1-64 of",
        "protection.yaml:7: limits[0].key must be one of principal, route, principal+route,",
        "protection.yaml:8: limits[0].limit must be between 1 and",
        "protection.yaml:9: limits[0].window: must be a duration",
        "protection.yaml:10: limits[0].routes: no route named 'no-such-route' in routes.yaml",
        "protection.yaml:11: limits[1].bogus: unknown key",
        "protection.yaml:11: limits[1].limit must be a whole number",
        "protection.yaml:12: limits[2].name: 'a' is used by an earlier limit",
        "protection.yaml:12: limits[2].window: must be between 1ms and",
        "protection.yaml:17: detectors.extra: unknown key",
        "protection.yaml:14: detectors.bola_enumeration.distinct_ids must be between 1 and 10000",
        "protection.yaml:14: detectors.bola_enumeration.denied_fraction must be between",
        "protection.yaml:14: detectors.bola_enumeration.action must be one of alert, throttle,",
        "protection.yaml:15: detectors.auth_failures needs unauthenticated or forbidden",
        "protection.yaml:16: detectors.token_spread.status must be 429 or 403",
        "protection.yaml:16: detectors.token_spread: action throttle needs throttle:",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), (line, found)
    assert len(found) == len(expected), found


@pytest.mark.parametrize(
    "text, message",
    [
        ("limits:\n  - {name: a, key: route, limit: 1, window: 1m}\n" * 2, "duplicate key"),
        ("mode: [observe\n", "invalid YAML"),
        ("- a list\n", "must be a mapping"),
        ("a: &x [*x]\n", "invalid YAML"),
        ("\x00", "invalid YAML"),
        ("limits: " + "[" * 5000 + "]" * 5000 + "\n", "invalid YAML: nested too deeply"),
        ("limits:\n" + "  - {name: a, key: route, limit: 1, window: 1}\n" * 65, "at most 64"),
        ("detectors:\n  token_spread: {window: 1m, addresses: 5, by: [cookie]}\n", "cookie"),
        ("limits:\n  - {name: a, key: route, limit: 1, window: .inf}\n", "between 1ms"),
        ('limits:\n  - {name: "a\\u202eb", key: route, limit: 1, window: 1}\n', "name must"),
    ],
    ids=[
        "duplicate-key",
        "syntax",
        "not-a-mapping",
        "recursive-alias",
        "nul",
        "deep",
        "too-many-limits",
        "spread-by",
        "infinite-window",
        "bidi-name",
    ],
)
def test_hostile_files_are_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    found = problems(tmp_path, text)
    assert any(message in p for p in found), found
    assert all(p.startswith("protection.yaml") for p in found), found


def test_protection_needs_routes(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, bundle)
    (bundle / "routes.yaml").unlink()
    (bundle / "protection.yaml").write_text("mode: observe\n")
    with pytest.raises(BundleError, match=r"protection\.yaml needs routes\.yaml"):
        load_bundle(bundle)


def test_a_misspelt_file_name_is_a_warning(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, bundle)
    (bundle / "protection.yml").write_text("mode: observe\n")
    loaded = load_bundle(bundle)
    assert loaded.protection is None
    assert any("did you mean protection.yaml" in str(w) for w in loaded.warnings)


@pytest.mark.parametrize(
    "value, seconds",
    [(90, 90.0), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert duration(value) == seconds


@pytest.mark.parametrize("value", [True, "5 weeks", "-1s", "0", 8 * 86400, "nan", "1e3s"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        duration(value)
