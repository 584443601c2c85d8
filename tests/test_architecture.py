"""The layout's rules, read from the source (docs/architecture.md, "Packages and their imports").

Packages form layers, each importing only those below it:

    contracts  <-  memory, eval  <-  trainers  <-  service  <-  bench

`contracts` is `trainers/contracts/` with the method config dataclasses it names
(`trainers/methods/<name>/config.py`, `trainers/methods/checks.py`): what crosses a process
boundary. The control plane (`service/`) and the contracts never import torch at module level;
no two modules import each other at module level.
"""

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "trainers", "memory", "eval", "bench")
BELOW = {
    "contracts": set(),
    "memory": {"contracts"},
    "eval": {"contracts"},
    "trainers": {"contracts", "memory", "eval"},
    "service": {"contracts", "eval", "trainers"},
    "bench": {"contracts", "memory", "eval", "trainers", "service"},
}
HEAVY = {"torch", "transformers", "peft", "deepspeed", "accelerate", "safetensors", "datasets", "vllm"}
TORCH_FREE = ("service", "contracts")
CONTRACT_MODULE = re.compile(r"trainers\.contracts(\..+)?|trainers\.methods(\.checks|\.\w+\.config)?")


def layer(module: str) -> str:
    """The layer a project module belongs to."""
    return "contracts" if CONTRACT_MODULE.fullmatch(module) else module.split(".")[0]


@cache
def modules() -> dict[str, Path]:
    """Every project module by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@cache
def imports(module: str, top_level_only: bool) -> frozenset[str]:
    """Modules `module` imports: every import statement, or only those run when it is imported."""
    tree = ast.parse(modules()[module].read_text())
    nodes = _top_level(tree.body) if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules
    return frozenset(names)


def project_imports(module: str, top_level_only: bool = False) -> set[str]:
    """The project modules among `module`'s imports."""
    return {name for name in imports(module, top_level_only) if name in modules()} - {module}


def _top_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Statements run at import time: the body, and the branches of its `if` and `try` blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level(block)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def test_the_layer_rule_holds_for_the_projects_own_layout() -> None:
    """The checker sees the project: every layer has modules, and contracts are classified."""
    layers = {layer(module) for module in modules()}
    assert layers == set(BELOW)
    assert layer("trainers.contracts.job") == layer("trainers.methods.lora.config") == "contracts"
    assert layer("trainers.methods.lora.method") == "trainers"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = sorted(
        f"{module} imports {name}"
        for module in modules()
        for name in project_imports(module)
        if layer(name) != layer(module) and layer(name) not in BELOW[layer(module)]
    )
    assert not wrong, "\n".join(wrong)


def test_no_two_modules_import_each_other_when_loaded() -> None:
    """No import cycle at module level, in any package (a cycle breaks whichever module loads first)."""
    graph = {module: project_imports(module, top_level_only=True) for module in modules()}
    cycles = [cycle for cycle in _cycles(graph) if len(cycle) > 1]
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("torch_free", TORCH_FREE)
def test_torch_free_layers_never_load_torch(torch_free: str) -> None:
    """What the control plane and the contracts load at import time, followed through the project."""
    heavy = []
    for start in (module for module in modules() if layer(module) == torch_free):
        seen, todo = {start}, [start]
        while todo:
            module = todo.pop()
            if found := {name.split(".")[0] for name in imports(module, True)} & HEAVY:
                heavy.append(f"{start} loads {', '.join(sorted(found))} (through {module})")
                break
            todo.extend(name for name in project_imports(module, True) if name not in seen)
            seen.update(todo)
    assert not heavy, "\n".join(heavy)


def test_the_checker_finds_a_cycle_and_a_layer_breach() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"], ["c"]]
    assert "service" not in BELOW["trainers"] and "trainers" not in BELOW["eval"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted; singletons included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)
