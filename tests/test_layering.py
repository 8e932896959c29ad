"""The package layout's rules, read from the source (every import, inside functions too).

- ``katoray.engine`` is pure: no Ray and no I/O library.
- Only ``katoray.runtime`` imports Ray (the entry points start it through the runtime).
- Nothing outside ``katoray.compat`` imports ``katoray.compat`` (kato-lm's names are an adapter).
- No import cycle between katoray modules, counting imports inside functions and the lazy
  ``lazy_exports`` tables of package ``__init__`` files.
- No module is over 400 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "katoray"
MAX_LINES = 400
IO_LIBRARIES = {"ray", "sqlite3", "pymongo", "bson", "requests", "socket", "subprocess", "http", "urllib", "io",
                "os", "pathlib", "shutil", "tempfile", "matplotlib", "transformers", "tokenizers", "datasets",
                "pyarrow", "fastapi", "uvicorn", "starlette", "time"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def executed(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports when it runs: ``import x``, ``from x import y`` (``x.y``
    when that is a module), at any depth (inside functions too), plus the modules of a
    ``lazy_exports(__name__, {module: names})`` table; not imports for type checkers only."""
    names: set[str] = set()
    for node in executed(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports":
            table = node.args[1] if len(node.args) > 1 else None
            if isinstance(table, ast.Dict):
                names.update(key.value for key in table.keys if isinstance(key, ast.Constant))
    return names


GRAPH = {name: {m for m in imported(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_the_engine_is_pure():
    offenders = {name: sorted(m for m in imported(path) if m.split(".")[0] in IO_LIBRARIES)
                 for name, path in MODULES.items() if name.startswith("katoray.engine")}
    assert not {k: v for k, v in offenders.items() if v}


def test_only_the_runtime_imports_ray():
    users = sorted(name for name, path in MODULES.items()
                   if any(m.split(".")[0] == "ray" for m in imported(path)) and not name.startswith("katoray.runtime"))
    assert users == []


def test_the_core_never_imports_the_compatibility_package():
    users = sorted(name for name, deps in GRAPH.items() if not name.startswith("katoray.compat")
                   and name != "katoray" and any(d.startswith("katoray.compat") for d in deps))
    assert users == []      # the top-level package only re-exports kato-lm's names, lazily


def test_no_import_cycles():
    assert strongly_connected(GRAPH) == []


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_rules_see_what_they_check():
    # The reader must find function-level imports and lazy tables, or the rules above pass vacuously.
    assert "katoray.runtime.node" in GRAPH["katoray.runtime"]                 # a lazy_exports table
    assert "katoray.jobs.runs" in GRAPH["katoray.compat.runs"]
    assert any(m.startswith("ray") for m in imported(MODULES["katoray.runtime.driver"]))   # inside functions
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    typed_only = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ray\nelse:\n    import os\n")
    assert {n.names[0].name for n in executed(typed_only) if isinstance(n, ast.Import)} == {"os"}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)
