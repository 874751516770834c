"""The package's layering, checked from its source (issue 19).

* No import cycle among ``pdediff``'s modules, function-level imports included.
* No module imports a private (``_``-prefixed) module or name of *another*
  subpackage, except the package's own top-level shared layer
  (``pdediff._*`` modules such as ``pdediff._validation``).

The graph is built with :mod:`ast` from every ``pdediff/**/*.py`` file, so the
test sees imports inside functions that a runtime check would miss.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pdediff"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_pkg = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str):
    """Yield ``(target_module, imported_name_or_None, lineno)`` for every import in *module*."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pdediff":
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != "pdediff":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from pkg import module`
                    yield sub, None, node.lineno
                else:
                    yield target, alias.name, node.lineno


def _owner(target: str) -> str:
    """The longest existing module prefix of *target*."""
    parts = target.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _name, _line in _imports(module):
            owner = _owner(target)
            if owner and owner != module:
                graph[module].add(owner)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted.

    A package ``__init__`` that only re-exports its own children would form a
    trivial cycle with them whenever a child imports a sibling *through* the
    package; those edges (child -> its own package) are ignored, since the
    child really depends on the sibling, not on the package face.
    """
    def edges(m):
        for t in graph[m]:
            if m.startswith(t + ".") and MODULES[t].name == "__init__.py":
                continue
            yield t

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    import sys
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _subpackage(module: str) -> str:
    """``pdediff.heat.solve`` -> ``pdediff.heat``; top-level modules are their own unit."""
    parts = module.split(".")
    if MODULES[module].name == "__init__.py":
        return module
    return ".".join(parts[:2]) if len(parts) > 2 else module


def private_violations() -> list[str]:
    out = []
    for module in MODULES:
        home = _subpackage(module)
        for target, name, line in _imports(module):
            owner = _owner(target)
            if not owner:
                continue
            there = _subpackage(owner)
            if there == home or home.startswith(there + ".") or there.startswith(home + "."):
                continue
            rel = owner.split(".")[1:]
            # the package's own top-level shared layer: pdediff._x (a private module directly under pdediff)
            if len(rel) == 1 and rel[0].startswith("_"):
                continue
            private_module = any(p.startswith("_") and p != "__init__" for p in rel)
            private_name = name is not None and name.startswith("_") and not name.startswith("__")
            if private_module or private_name:
                what = f"{target}.{name}" if name else target
                out.append(f"{module}:{line} imports {what}")
    return out


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_imports_across_subpackages():
    found = private_violations()
    assert not found, f"{len(found)} cross-subpackage private imports:\n" + "\n".join(found)


def test_the_checks_can_fail():
    """The cycle finder and the private-import rule detect what they claim to."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


if __name__ == "__main__":  # a report of the current state
    g = import_graph()
    for c in cycles(g):
        print("CYCLE", " <-> ".join(c))
    v = private_violations()
    for x in v:
        print("PRIVATE", x)
    print(len(cycles(g)), "cycles,", len(v), "private imports")
