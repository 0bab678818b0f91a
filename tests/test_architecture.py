"""The package's import graph: layers import one way only, lowest first, with no cycles.

``attention`` <- ``retrofit`` <- ``models`` <- ``data``, ``engine`` <- ``bench``, ``analysis``, ``export``,
``integrations`` <- ``cli``; ``utils`` sits below everything. Run this file as a script
(``python tests/test_architecture.py [SRC]``) to print the graph's counts for any source tree.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "attnlab"
# lowest first; a module may import its own layer's and lower layers' modules only
LAYERS = {
    "utils": 0,
    "attention": 1,
    "retrofit": 2,
    "models": 3,
    "summary": 3,
    "data": 4,
    "engine": 5,
    "bench": 6,
    "analysis": 6,
    "export": 6,
    "integrations": 6,
    "cli": 7,
}
FACADE = f"{PACKAGE}"  # the top-level __init__ re-exports the public API and is nobody's dependency


@dataclass
class ImportGraph:
    edges: set[tuple[str, str]] = field(default_factory=set)  # (importing module, imported module)
    in_functions: list[tuple[str, str]] = field(default_factory=list)

    def components(self) -> set[tuple[str, str]]:
        return {(component(a), component(b)) for a, b in self.edges if component(a) != component(b)}

    def upward(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, b in self.edges if LAYERS[component(b)] > LAYERS[component(a)])

    def private(self) -> list[tuple[str, str]]:
        """Imports of another package's private module (``attnlab.pkg._name``)."""
        return sorted(
            (a, b)
            for a, b in self.edges
            if any(part.startswith("_") for part in b.split(".")[2:])
            and not (a + ".").startswith(b.rsplit(".", 1)[0] + ".")
        )

    def cycles(self) -> list[list[str]]:
        """Cycles between components (each found once, from its smallest member)."""
        graph: dict[str, set[str]] = {}
        for a, b in self.components():
            graph.setdefault(a, set()).add(b)
        found = []

        def walk(start: str, node: str, path: list[str]) -> None:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                elif nxt not in path and nxt > start:
                    walk(start, nxt, [*path, nxt])

        for start in sorted(graph):
            walk(start, start, [start])
        return found


def component(module: str) -> str:
    """'attnlab.models.resnet' -> 'models'."""
    return module.split(".")[1]


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_graph(src: Path = SRC) -> ImportGraph:
    """Every import of an attnlab module by an attnlab module (the facade ``attnlab/__init__.py`` left out)."""
    graph = ImportGraph()
    for path in sorted((src / PACKAGE).rglob("*.py")):
        name = module_name(path, src)
        if name == FACADE:
            continue
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        function_nodes = {
            id(node)
            for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn)
        }
        for node in ast.walk(tree):
            for target in imported_modules(node, name, is_package):
                if target == name or not target.startswith(PACKAGE + ".") or component(target) == "__main__":
                    continue
                graph.edges.add((name, target))
                if id(node) in function_nodes:
                    graph.in_functions.append((name, target))
    return graph


def imported_modules(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The attnlab modules an import statement names (``from pkg import sub`` counts as ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    if target == PACKAGE:  # from attnlab import x: x is a subpackage or module
        return [f"{PACKAGE}.{alias.name}" for alias in node.names]
    return [target]


def test_every_component_has_a_layer():
    graph = read_graph()
    named = {component(m) for edge in graph.edges for m in edge}
    on_disk = {component(module_name(p, SRC)) for p in (SRC / PACKAGE).rglob("*.py") if module_name(p, SRC) != FACADE}
    assert (named | on_disk) - {"__main__"} <= set(LAYERS), sorted((named | on_disk) - set(LAYERS))


def test_imports_run_one_way():
    assert read_graph().upward() == []


def test_no_import_cycles_between_components():
    assert read_graph().cycles() == []


def test_no_private_module_of_another_package():
    assert read_graph().private() == []


def test_attnlab_imports_are_at_module_level():
    """Function-level imports hide dependencies (and cycles) from readers and from this test; only optional
    third-party extras (timm, onnxruntime, matplotlib, ...) are imported late."""
    assert read_graph().in_functions == []


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    (tmp_path / PACKAGE / "attention").mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (tmp_path / PACKAGE / "attention" / "__init__.py").write_text("from ..models import create_model\n")
    (tmp_path / PACKAGE / "models.py").write_text("def f():\n    from attnlab.attention import x\n")
    graph = read_graph(tmp_path)
    assert graph.upward() == [("attnlab.attention", "attnlab.models")]
    assert graph.in_functions == [("attnlab.models", "attnlab.attention")]
    assert graph.cycles() == [["attention", "models", "attention"]]


def describe(src: Path) -> str:
    graph = read_graph(src)
    return (
        f"{len(graph.edges)} module imports, {len(graph.components())} between components; "
        f"{len(graph.upward())} upward, {len(graph.cycles())} component cycles, "
        f"{len(graph.private())} of another package's private module, {len(graph.in_functions)} inside functions"
    )


if __name__ == "__main__":
    print(describe(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC))
