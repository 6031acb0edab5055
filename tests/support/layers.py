"""The layer rule of docs/architecture.md as code: pdp's import graph, each module's layer, and
what breaks the rule (an upward or unlisted sideways import, a cycle between packages)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# Layer groups, lowest first: a group may import its own modules, every group of a lower
# layer, and the groups listed in SIDEWAYS. `pdp.client` is a caller library: it sits beside
# the edges but may import only the foundation (with the generated pdp.v1), so a program that
# only calls pdp over gRPC never loads the engine, cedarpy or the server.
GROUPS: dict[str, tuple[int, tuple[str, ...]]] = {
    "foundation": (
        0,
        (
            "pdp",  # the root package alone (__version__), not what lies under it
            "pdp.errors",
            "pdp.model",
            "pdp.memsize",
            "pdp.plantypes",
            "pdp.yamlsrc",
            "pdp.jsonkeys",
            "pdp.logs",
            "pdp.v1",
        ),
    ),
    "authn": (1, ("pdp.authn",)),
    "routes": (1, ("pdp.routes",)),
    "bundle": (2, ("pdp.bundle",)),
    "decide": (3, ("pdp.engine", "pdp.evaluation", "pdp.plan", "pdp.decisioncache")),
    "live": (4, ("pdp.live",)),
    "gateway": (4, ("pdp.gateway",)),
    "protection": (4, ("pdp.protection",)),
    "decisionlog": (5, ("pdp.decisionlog",)),
    "metrics": (5, ("pdp.metrics",)),
    "server": (6, ("pdp.server",)),
    "http": (6, ("pdp.http",)),
    "embedded": (6, ("pdp.embedded",)),
    "devkit": (6, ("pdp.devkit",)),
    "policytest": (6, ("pdp.policytest",)),
    "client": (6, ("pdp.client",)),
    "cli": (7, ("pdp.cli", "pdp.__main__")),
}

# Imports within one layer that the table allows (importer -> imported groups).
SIDEWAYS: dict[str, frozenset[str]] = {
    "routes": frozenset({"authn"}),
    "gateway": frozenset({"live"}),
    "protection": frozenset({"gateway"}),
    "decisionlog": frozenset({"metrics"}),
    "http": frozenset({"server", "client"}),
    "embedded": frozenset({"server", "client"}),
    "policytest": frozenset({"server", "http", "devkit"}),
}

# Groups that may import only these, whatever their layer says.
ONLY: dict[str, frozenset[str]] = {"client": frozenset({"foundation"})}

GENERATED = ("pdp.v1",)


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target inside pdp, where it is written."""

    module: str
    target: str
    path: str  # relative to the root
    line: int


def module_name(root: Path, path: Path) -> str:
    """`pdp/live/store.py` -> `pdp.live.store`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, package: str = "pdp") -> dict[str, Path]:
    """Every module under `root/package`, by dotted name (generated code excluded)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        name = module_name(root, path)
        if not _within(name, GENERATED):
            found[name] = path
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(root: Path, package: str = "pdp") -> Iterator[Import]:
    """Every import of a pdp module, anywhere in a file: module level, inside functions and
    under `if TYPE_CHECKING:` alike. `from pdp.x import y` names `pdp.x.y` when that is a
    module, else `pdp.x`; importing `pdp.x.y` also runs `pdp/x/__init__.py`, so both count."""
    known = modules(root, package) | {name: Path() for name in GENERATED}
    for name, path in modules(root, package).items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            for target in targets:
                if not _within(target, (package,)):
                    continue
                parts = target.split(".")
                for end in range(2, len(parts) + 1):  # the packages on the way run too
                    yield Import(
                        name, ".".join(parts[:end]), path.relative_to(root).as_posix(), node.lineno
                    )


def group_of(module: str, groups: Mapping[str, tuple[int, tuple[str, ...]]] = GROUPS) -> str:
    """The group whose longest prefix names `module`; KeyError for a module with no layer."""
    best, length = None, -1
    for group, (_, prefixes) in groups.items():
        for prefix in prefixes:
            matches = module == prefix if prefix == "pdp" else _within(module, (prefix,))
            if matches and len(prefix) > length:
                best, length = group, len(prefix)
    if best is None:
        raise KeyError(f"{module} has no layer: add it to tests/support/layers.py GROUPS")
    return best


def allowed(importer: str, imported: str) -> bool:
    """May a module of group `importer` import one of group `imported`?"""
    if importer == imported:
        return True
    if importer in ONLY:
        return imported in ONLY[importer]
    mine, theirs = GROUPS[importer][0], GROUPS[imported][0]
    return theirs < mine or imported in SIDEWAYS.get(importer, frozenset())


def unlayered(root: Path, package: str = "pdp") -> list[str]:
    """Modules no group names."""
    missing = []
    for name in modules(root, package):
        try:
            group_of(name)
        except KeyError:
            missing.append(name)
    return missing


def violations(root: Path, package: str = "pdp") -> list[str]:
    """Imports against the table, as `file:line: importer (group) -> target (group)`."""
    found: dict[str, None] = {}
    for item in imports(root, package):
        if item.target == package:  # the root package holds only __version__
            continue
        mine, theirs = group_of(item.module), group_of(item.target)
        if not allowed(mine, theirs):
            found[
                f"{item.path}:{item.line}: {item.module} ({mine}, layer {GROUPS[mine][0]}) "
                f"imports {item.target} ({theirs}, layer {GROUPS[theirs][0]})"
            ] = None
    return list(found)


def package_of(module: str, package: str = "pdp") -> str:
    """`pdp.live.store` -> `pdp.live`; a top-level module is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else package


def package_cycles(root: Path, package: str = "pdp") -> list[list[str]]:
    """Sets of packages that import each other round a circle (Tarjan's strongly connected
    components of the package graph, self-imports left out), each sorted."""
    graph: dict[str, set[str]] = {}
    for item in imports(root, package):
        source, target = package_of(item.module), package_of(item.target)
        graph.setdefault(source, set())
        if source != target and target != package:
            graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles
