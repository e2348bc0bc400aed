"""Imports flow one way between InferCost's packages (SPEC §1).

A package may import only the packages listed for it; ``infercost.testing`` and ``infercost.cli``
may import everything. The check reads the source with ``ast`` so that lazy imports inside
functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "infercost"

ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "engine": set(),
    "collect": {"engine"},
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
