"""The package's import graph: no cycles, and decoding does not depend on training.

Static checks on every ``aiayn`` module's imports, at module level and inside functions
(``ast``), so that a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aiayn"


def _module_name(file: Path) -> str:
    parts = file.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {_module_name(f): f for f in sorted(PACKAGE.rglob("*.py"))}


def _imports(file: Path, known: set[str]) -> set[str]:
    """The package's modules that ``file`` imports anywhere (module level, functions,
    ``TYPE_CHECKING`` blocks); ``from a.b import c`` counts ``a.b.c`` when that is a module."""
    name = _module_name(file)
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    modules = _modules()
    return {m: _imports(f, set(modules)) for m, f in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_imports_inside_functions():
    # stages import the trainer lazily; inside the package, the worker imports it at the top
    # and the trainer imports the launcher.
    graph = import_graph()
    assert "aiayn.train.trainer" in graph["aiayn.train.worker"]
    assert "aiayn.train.distributed" in graph["aiayn.train.trainer"]
    assert "aiayn.checkpoint" in graph["aiayn.average"]
    assert "aiayn.checkpoint" in graph["aiayn.decode.translator"]  # inside Translator.load


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_decoding_does_not_import_training_code():
    graph = import_graph()
    decode = [m for m in graph if m == "aiayn.decode" or m.startswith("aiayn.decode.")]
    assert "aiayn.decode.translator" in decode
    bad = {
        m: sorted(i for i in graph[m] if i == "aiayn.train" or i.startswith("aiayn.train."))
        for m in decode
    }
    assert {m: v for m, v in bad.items() if v} == {}
