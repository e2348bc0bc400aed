"""Imports flow one way between InferCost's packages (SPEC §1), and no module imports itself.

A package may import only the packages listed for it; ``infercost.testing`` and ``infercost.cli``
may import everything. No two modules of ``infercost`` may import each other, directly or
around a longer loop. The checks read the source with ``ast`` so that lazy imports inside
functions and type-only imports under ``if TYPE_CHECKING:`` count too: a cycle that only type
checkers follow still means two modules that cannot be understood, or split, one at a time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "infercost"

ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "engine": set(),
    # api is the lowest package (it imports nothing): collect reads Kubernetes label grammar there.
    "collect": {"engine", "api"},
    "kube": {"api"},
    "outputs": {"engine", "api"},
    "controllers": {"api", "engine", "collect", "kube", "outputs"},
    "cli": {"api", "engine", "collect", "kube", "outputs", "controllers"},
    "testing": {"api", "engine", "collect", "kube", "outputs", "controllers", "cli"},
}

# Third-party modules the pure packages may use.
THIRD_PARTY: dict[str, set[str] | None] = {
    "engine": {"numpy", "attrs", "attr"},
    "api": {"attrs", "attr", "yaml"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = path.relative_to(ROOT.parent).parts[: -node.level]
                base = ".".join(package)
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return found


def _package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_layers(package: str) -> None:
    violations = []
    for path in _package_files(package):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "infercost" or len(parts) < 2:
                continue
            target = parts[1]
            if target in ALLOWED and target != package and target not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not violations, "\n".join(violations)


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_edges(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The modules of ``infercost`` that ``path`` imports.

    ``from package import name`` points at the submodule ``package.name`` when there is one and
    at the package otherwise. Importing a submodule also runs its package's ``__init__``, but
    that implicit step is not an edge: a package that imports its own submodules (the usual
    layout) would otherwise be a cycle with each of them.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        # The longest prefix of ``name`` that is a module of ours (``a.b.attr`` -> ``a.b``).
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                found.add(candidate)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = path.relative_to(root.parent).parts[: -node.level]
                base = ".".join(package)
                if node.module:
                    base = f"{base}.{node.module}"
            else:
                base = node.module or ""
            for alias in node.names:
                add(f"{base}.{alias.name}")
    found.discard(_module_name(path, root))
    return found


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each set of modules that reach one another through imports (Tarjan), as one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_a_cycle(graph, component) for component in components]


def _a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One concrete loop through ``component``, starting and ending at its first module."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for module in frontier:
            for target in sorted(graph[module] & component):
                if target == start:
                    return [*paths[module], start]
                if target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no loop through {sorted(component)}")


def _import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    paths = sorted(root.rglob("*.py"))
    modules = {_module_name(path, root) for path in paths}
    return {_module_name(path, root): _module_edges(path, modules, root) for path in paths}


def test_no_import_cycles() -> None:
    cycles = _import_cycles(_import_graph())
    assert not cycles, "import cycles (one loop shown per knot):\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def test_cycle_check_sees_type_only_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .store import Store\n")
    (package / "store.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .watching import W\n"
    )
    (package / "watching.py").write_text("from pkg import store\n")
    (package / "alone.py").write_text("import pkg.store\n")
    graph = _import_graph(package)
    assert graph == {
        "pkg": {"pkg.store"},
        "pkg.store": {"pkg.watching"},
        "pkg.watching": {"pkg.store"},
        "pkg.alone": {"pkg.store"},
    }
    assert _import_cycles(graph) == [["pkg.store", "pkg.watching", "pkg.store"]]


@pytest.mark.parametrize("package", sorted(THIRD_PARTY))
def test_pure_packages_use_no_io_libraries(package: str) -> None:
    import sys

    stdlib = set(sys.stdlib_module_names)
    forbidden_stdlib = {"socket", "http", "urllib", "subprocess", "threading", "asyncio"}
    allowed = THIRD_PARTY[package] or set()
    violations = []
    for path in _package_files(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "infercost" or top == "__future__":
                continue
            if top in stdlib and top not in forbidden_stdlib:
                continue
            if top not in allowed:
                violations.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not violations, "\n".join(violations)


def test_every_package_is_covered() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
