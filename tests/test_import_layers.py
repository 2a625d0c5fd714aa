"""The package's imports run one way (cli -> scoring/losses -> functional -> backends -> checks -> errors): read
from the source by AST, every import of every module under medloss/, at module level or inside a function."""
from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "medloss"
BELOW_BACKENDS = ("functional", "losses", "scoring", "data", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every medloss module a file names in an import statement (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "medloss" or name.startswith("medloss.")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        graph[module] = _imported(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py")
    return graph


GRAPH = _graph()


def _package(module: str) -> str | None:
    """First level under medloss/ (a top-level module is its own package); None for medloss itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _package_arrows() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> the imports that draw that arrow."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for module, names in GRAPH.items():
        for name in names:
            # `from medloss.x import y` names medloss.x.y too; only the modules that exist count
            if name not in GRAPH:
                continue
            src, dst = _package(module), _package(name)
            if src and dst and src != dst:
                arrows.setdefault((src, dst), []).append(f"{module} -> {name}")
    return arrows


def test_the_scan_sees_the_package():
    assert "medloss.backends.op" in GRAPH and "medloss.functional.stats" in GRAPH
    assert "medloss.checks" in GRAPH["medloss.backends.eager"]  # an arrow the layers allow, seen


def test_backends_import_nothing_above_them():
    bad = sorted(f"{module} -> {name}" for module, names in GRAPH.items() if _package(module) == "backends"
                 for name in names if _package(name) in BELOW_BACKENDS)
    assert bad == []


def test_no_cycle_between_packages():
    arrows = _package_arrows()
    packages = sorted({p for pair in arrows for p in pair})
    reach = {p: {b for (a, b) in arrows if a == p} for p in packages}
    for _ in packages:  # transitive closure
        for p in packages:
            reach[p] |= set(itertools.chain.from_iterable(reach[q] for q in reach[p]))
    cycles = sorted(f"{a} <-> {b}: {arrows.get((a, b), ['(via others)'])[0]}"
                    for a, b in itertools.combinations(packages, 2) if b in reach[a] and a in reach[b])
    assert cycles == []


def _cli_importers() -> list[str]:
    return sorted(f"{module} -> {name}" for module, names in GRAPH.items() if _package(module) != "cli"
                  for name in names if _package(name) == "cli")


def test_only_the_cli_imports_the_cli():
    assert _cli_importers() == []
