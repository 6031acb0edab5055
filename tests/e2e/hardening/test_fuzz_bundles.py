"""Bundle fuzzing: broken files give a load error, never another exception and never a swap."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.bundle.compiler import compile_bundle
from pdp.bundle.loader import read_bundle
from pdp.errors import BundleError
from tests.support.bundles import run_pdp
from tests.support.hardening import assert_alive_and_serving, status
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

pytestmark = pytest.mark.xdist_group("hardening-fuzz")

CONTENT = sorted(
    str(p.relative_to(EXAMPLE_BUNDLE))
    for p in EXAMPLE_BUNDLE.rglob("*")
    if p.is_file() and "tests" not in p.relative_to(EXAMPLE_BUNDLE).parts
)


def copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLE_BUNDLE, target, ignore=shutil.ignore_patterns("tests", ".*"))
    return target


def load(root: Path) -> None:
    compile_bundle(read_bundle(str(root)))


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    """One file of the example bundle, truncated, spliced, salted or replaced."""
    name = draw(st.sampled_from(CONTENT))
    data = (EXAMPLE_BUNDLE / name).read_bytes()
    mode = draw(st.sampled_from(["truncate", "splice", "insert", "replace", "text"]))
    cut = draw(st.integers(0, len(data)))
    if mode == "truncate":
        return name, data[:cut]
    if mode == "splice":
        return name, data[:cut] + data[draw(st.integers(0, len(data))) :]
    if mode == "insert":
        return name, data[:cut] + draw(st.binary(min_size=1, max_size=8)) + data[cut:]
    if mode == "replace":
        return name, draw(st.binary(max_size=200))
    return name, draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutations())
def test_a_mutated_bundle_loads_or_raises_a_bundle_error(mutation: tuple[str, bytes]) -> None:
    name, data = mutation
    with tempfile.TemporaryDirectory() as folder:
        root = copy_example(Path(folder) / "bundle")
        (root / name).write_bytes(data)
        try:
            load(root)
        except BundleError as exc:
            assert exc.problems, "a load error names at least one problem"


DEEP = 5000  # far past any parser's recursion limit


def deep_files() -> dict[str, str]:
    return {
        "routes.yaml": "identity: " + "[" * DEEP + "]" * DEEP + "\nroutes: []\n",
        "keys/orders.jwks.json": '{"keys": ' + "[" * DEEP + "]" * DEEP + "}",
    }


@pytest.mark.parametrize("name", list(deep_files()))
def test_deeply_nested_gateway_files_are_a_load_error(name: str, tmp_path: Path) -> None:
    root = copy_example(tmp_path / "bundle")
    (root / name).write_text(deep_files()[name])
    with pytest.raises(BundleError) as caught:
        load(root)
    assert "nested too deeply" in str(caught.value)


@pytest.mark.parametrize("name", ["entities.json", "links.json", "manifest.yaml"])
def test_deeply_nested_bundle_files_are_a_load_error(name: str, tmp_path: Path) -> None:
    root = copy_example(tmp_path / "bundle")
    text = "[" * DEEP + "]" * DEEP
    (root / name).write_text(f"name: {text}\n" if name.endswith(".yaml") else text)
    with pytest.raises(BundleError):
        load(root)


def test_a_manifest_with_a_control_character_is_a_load_error(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "bundle")
    (root / "manifest.yaml").write_text("name: orders\x7f\n")
    with pytest.raises(BundleError):
        load(root)


DEEP_CEDAR = {  # name -> (file, text nested far past what cedarpy's parsers survive)
    "parentheses": (
        "deep.cedar",
        "permit (principal, action, resource) when { " + "(" * 2000 + "true" + ")" * 2000 + " };",
    ),
    "sets": (
        "deep.cedar",
        "permit (principal, action, resource) when { " + "[" * 2000 + "]" * 2000 + " == [] };",
    ),
    "if chains": (
        "deep.cedar",
        "permit (principal, action, resource) when { "
        + "if true then " * 5000
        + "true"
        + " else false" * 5000
        + " };",
    ),
    "schema records": (
        "orders.cedarschema",
        "entity A = " + "{ a: " * 100_000 + "Long" + "}" * 100_000 + ";",
    ),
}


@pytest.mark.parametrize(("name", "text"), list(DEEP_CEDAR.values()), ids=list(DEEP_CEDAR))
def test_cedar_text_nested_past_the_parser_stack_is_a_load_error_not_a_crash(
    name: str, text: str, tmp_path: Path
) -> None:
    root = copy_example(tmp_path / "bundle")
    (root / name).write_text(text + "\n")
    result = run_pdp("check", str(root), timeout=60)
    assert result.returncode == 3, (result.returncode, result.stderr[-500:])


# --- through the reloader of a running server --------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    root = copy_example(tmp_path / "bundle")
    with ServerProcess(root, "--watch", "off", "--decision-log", "off") as server:
        yield server, root


def reload_and_wait(server: ServerProcess, failures: int) -> None:
    assert server.process is not None and server.address is not None
    server.process.send_signal(signal.SIGHUP)
    address = server.address
    wait_for(lambda: status(address).load_failures >= failures, what="the reload to fail")


BROKEN: dict[str, tuple[str, bytes]] = {
    "a truncated policy": ("orders/customers.cedar", b"permit (principal, action"),
    "entities that are not JSON": ("entities.json", b'[{"uid": '),
    "a schema that does not parse": ("orders.cedarschema", b"entity User in [;"),
    "routes with an unknown key": ("routes.yaml", b"routes: []\nbogus: 1\n"),
    "deeply nested routes": ("routes.yaml", b"identity: " + b"[" * DEEP + b"]" * DEEP),
    "deeply nested entities": ("entities.json", b"[" * DEEP + b"]" * DEEP),
    "a manifest with a control character": ("manifest.yaml", b"name: x\x01\n"),
    "random bytes as a policy": ("admin/functions.cedar", bytes(range(256))),
}


def test_broken_reloads_never_swap_and_the_server_keeps_serving(
    served: tuple[ServerProcess, Path],
) -> None:
    server, root = served
    assert server.address is not None
    first = status(server.address)
    assert first.serving and first.load_failures == 0
    for count, (name, (path, data)) in enumerate(BROKEN.items(), start=1):
        original = (root / path).read_bytes()
        (root / path).write_bytes(data)
        reload_and_wait(server, count)
        now = status(server.address)
        assert now.bundle_revision == first.bundle_revision, name
        assert now.activations == 1, name
        assert now.last_error, name
        assert now.serving, name
        (root / path).write_bytes(original)
    assert_alive_and_serving(server)
    # The files back as they were: the next reload clears the error without a new activation.
    server.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_for(lambda: not status(server.address or "").last_error, what="the error to clear")
    assert status(server.address).activations == 1


def test_a_reload_of_a_policy_nested_past_the_parser_stack_keeps_the_server_up(
    served: tuple[ServerProcess, Path],
) -> None:
    server, root = served
    nested = "(" * 2000 + "true" + ")" * 2000
    (root / "deep.cedar").write_text(f"permit (principal, action, resource) when {{ {nested} }};\n")
    reload_and_wait(server, 1)
    assert_alive_and_serving(server)
