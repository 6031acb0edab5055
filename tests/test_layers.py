"""The layer rule of docs/architecture.md holds over pdp's import graph, and the checker bites."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support import layers
from tests.support.server import REPO


def test_every_module_has_a_layer() -> None:
    assert layers.unlayered(REPO) == []


def test_imports_go_down_or_sideways_as_the_table_says() -> None:
    assert layers.violations(REPO) == []


def test_no_cycle_between_packages() -> None:
    assert layers.package_cycles(REPO) == []


def test_the_graph_is_read_at_all() -> None:
    """A checker that sees no imports passes everything: it must see known edges."""
    found = {(item.module, item.target) for item in layers.imports(REPO)}
    assert ("pdp.http.app", "pdp.server.calls") in found  # sideways, allowed
    assert ("pdp.live.store", "pdp.bundle.compiler") in found  # downwards
    assert ("pdp.plan", "pdp.plan.planner") in found


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


BASE = {
    "pdp/__init__.py": "",
    "pdp/errors.py": "",
    "pdp/model.py": "from pdp import errors\n",
    "pdp/bundle/__init__.py": "",
    "pdp/bundle/loader.py": "from pdp.model import x\n",
    "pdp/server/__init__.py": "",
    "pdp/server/app.py": "from pdp.bundle import loader\n",
    "pdp/http/__init__.py": "",
    "pdp/http/app.py": "from pdp.server.app import y\n",
    "pdp/client/__init__.py": "from pdp.model import z\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, BASE)
    assert layers.unlayered(root) == []
    assert layers.violations(root) == []
    assert layers.package_cycles(root) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        # upward, at module level
        ("pdp/bundle/loader.py", "from pdp.server.app import serve\n", "pdp.server"),
        # upward, relative
        ("pdp/bundle/loader.py", "from ..server import app\n", "pdp.server"),
        # upward, inside a function
        ("pdp/model.py", "def f():\n    import pdp.bundle.loader\n", "pdp.bundle"),
        # upward, typing only: counts too
        (
            "pdp/bundle/loader.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pdp.http import app\n",
            "pdp.http",
        ),
        # sideways without a table entry: server may not import http
        ("pdp/server/app.py", "from pdp.http.app import HttpEdge\n", "pdp.http"),
        # the client library may import only the foundation
        ("pdp/client/__init__.py", "from pdp.bundle import loader\n", "pdp.bundle"),
    ],
)
def test_a_wrong_import_fails(tmp_path: Path, name: str, text: str, expected: str) -> None:
    root = _tree(tmp_path, {**BASE, name: text})
    found = layers.violations(root)
    assert found, "the checker missed a wrong import"
    assert any(name in line and f"imports {expected}" in line for line in found), found


def test_a_cycle_between_packages_fails(tmp_path: Path) -> None:
    # Each import alone might be allowed sideways; together they are a circle.
    root = _tree(
        tmp_path,
        {
            **BASE,
            "pdp/server/app.py": "from pdp.http import app\n",
            "pdp/http/app.py": "from pdp.server import app\n",
        },
    )
    assert layers.package_cycles(root) == [["pdp.http", "pdp.server"]]


def test_a_module_without_a_layer_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**BASE, "pdp/newthing/__init__.py": ""})
    assert layers.unlayered(root) == ["pdp.newthing"]
