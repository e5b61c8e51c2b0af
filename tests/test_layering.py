"""The package's modules import one way: no module imports, at import time, one that imports it."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "curlora"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """curlora modules ``path`` imports at module level (imports inside functions are deferred)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        # "from curlora import plots" names a module; "from curlora.arms import Arm" its module.
        found |= {n for n in names if n in modules}
    return found


def test_module_imports_form_no_cycle():
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        # A package's own __init__ importing its submodules is how a package is built, not a cycle.
        graph[name] = {m for m in _imports(path, set(paths)) if not m.startswith(name + ".")}
        graph[name] -= {p for p in _parents(name)}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle among curlora modules: {err.args[1]}") from None
    # The math and the adapters sit below the research layer, never the other way round.
    for low, high in [
        ("curlora.cur", "curlora.arms"),
        ("curlora.methods", "curlora.arms"),
        ("curlora.arms", "curlora.study"),
        ("curlora.study", "curlora.findings"),
        ("curlora.readings", "curlora.findings"),
        ("curlora.tables", "curlora.findings"),
        # The inference layer: plan → cells → bootstrap/matching → claims → text → findings.
        ("curlora.plan", "curlora.cells"),
        ("curlora.study", "curlora.cells"),
        ("curlora.cells", "curlora.matching"),
        ("curlora.bootstrap", "curlora.matching"),
        ("curlora.matching", "curlora.claims"),
        ("curlora.claims", "curlora.claim_text"),
        ("curlora.claim_text", "curlora.findings"),
    ]:
        assert order.index(low) < order.index(high), (low, high)
    assert not any(m.startswith("curlora.plots") for m in _closure(graph, "curlora.findings"))


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    return seen
