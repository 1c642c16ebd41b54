"""No import circle among the modules of sagan_tf, training, export and benchmarks, counting imports inside functions.

A circle held apart only by an import inside a function still ties the two modules together: neither can be read,
changed or tested alone. This reads every module's source (nothing is imported), collects the imports at any depth
of its syntax tree, and looks for a cycle in the graph they make.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sagan_tf", "training", "export", "benchmarks")


def _module_files():
    """{module name: path} of every .py file of `PACKAGES` (a package's __init__.py is the package's name)."""
    modules = {}
    for package in PACKAGES:
        for directory, _, files in os.walk(os.path.join(ROOT, package)):
            for file in files:
                if not file.endswith(".py"):
                    continue
                parts = os.path.relpath(os.path.join(directory, file), ROOT)[: -len(".py")].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = os.path.join(directory, file)
    return modules


def _imported(node, module, is_package, modules):
    """The project modules that one Import or ImportFrom node of `module` names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if node.level:  # A relative import: resolved against the importing module's package.
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module
    found = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:  # `from pkg import module` imports the module.
            found.append(submodule)
        elif base in modules:  # `from module import name` (or `from pkg import name` defined in its __init__).
            found.append(base)
    return found


def import_graph():
    """{module: set of the project modules it imports anywhere in its source}."""
    modules = _module_files()
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        is_package = path.endswith("__init__.py")
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_imported(node, module, is_package, modules))
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycle(graph):
    """One cycle of `graph` as a list of modules (first == last), or None. Depth-first search with colours."""
    state = {}  # module -> "open" while on the current path, "done" after.
    path = []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_finds_a_cycle_through_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_resolves_from_package_import_module():
    modules = {"p": "p/__init__.py", "p.m": "p/m.py", "p.n": "p/n.py"}
    tree = ast.parse("def f():\n    from p import m, helper\n    from . import n\n")
    nodes = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert _imported(nodes[0], "p.n", False, modules) == ["p.m", "p"]
    assert _imported(nodes[1], "p.m", False, modules) == ["p.n"]


def test_no_import_cycle_among_the_project_modules():
    graph = import_graph()
    assert len(graph) > 50 and "sagan_tf.data.loader" in graph
    cycle = find_cycle(graph)
    if cycle:
        pytest.fail("Import cycle (imports inside functions count): " + " -> ".join(cycle))
