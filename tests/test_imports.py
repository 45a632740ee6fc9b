"""The import structure of tes_cts, read from the source with `ast` (imports inside functions and
under TYPE_CHECKING included): the API stands without the composition root, the packages import
one another without a cycle, and the leaf modules stay leaves."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from functools import cache
from pathlib import Path

import pytest

import tes_cts

PACKAGE_DIR = Path(tes_cts.__file__).resolve().parent
PROJECT = "tes_cts"


@cache
def project_modules() -> dict[str, Path]:
    """Every module of the project by its dotted name (a package by the name of its __init__)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((PROJECT, *parts))] = path
    return modules


def _is_project(name: str) -> bool:
    return name == PROJECT or name.startswith(PROJECT + ".")


def _imported_names(module: str, path: Path) -> set[str]:
    """The project modules `module` imports, relative imports resolved; `from package import
    name` counts as importing package.name when that is a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in project_modules())
    return {name for name in names if _is_project(name) and name != module}


@cache
def module_imports() -> dict[str, frozenset[str]]:
    return {module: frozenset(_imported_names(module, path)) for module, path in project_modules().items()}


def node_of(module: str) -> str:
    """A package of tes_cts (tes_cts.api, ...) stands for all its modules; a top-level module
    (tes_cts.wiring, ...) and the root package are nodes of their own."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE_DIR / parts[1] / "__init__.py").exists():
        return ".".join(parts[:2])
    return module


def package_graph() -> dict[str, dict[str, list[str]]]:
    """node -> imported node -> the module imports that make the edge ("a.b imports c.d")."""
    graph: dict[str, dict[str, list[str]]] = {node_of(module): {} for module in project_modules()}
    for module, imported in module_imports().items():
        for name in sorted(imported):
            source, target = node_of(module), node_of(name)
            if source != target:
                graph[source].setdefault(target, []).append(f"{module} imports {name}")
                graph.setdefault(target, {})
    return graph


def strongly_connected_components(graph: dict[str, dict]) -> list[list[str]]:
    """Tarjan's algorithm."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
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
    return components


def shortest_cycle(graph: dict[str, dict], component: list[str]) -> list[str]:
    """The shortest way from the component's first node back to itself, inside the component."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target not in members:
                continue
            if target == start:
                back = [node]
                while back[-1] != start:
                    back.append(came_from[back[-1]])
                return [*reversed(back), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"no cycle through {start} in {component}")


def describe_cycle(graph: dict[str, dict[str, list[str]]], component: list[str]) -> str:
    cycle = shortest_cycle(graph, component)
    edges = list(zip(cycle, cycle[1:]))
    lines = [" -> ".join(cycle)]
    for source, target in edges:
        lines.append(f"  {source} -> {target}: " + "; ".join(graph[source][target]))
    others = [(s, t) for s in component for t in graph[s] if t in component and (s, t) not in edges]
    if others:
        lines.append("  other edges inside the cycle: " + "; ".join(
            f"{s} -> {t} ({', '.join(graph[s][t])})" for s, t in others))
    return "\n".join(lines)


def modules_loaded_by(statement: str) -> set[str]:
    """The modules in sys.modules after `statement`, in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE_DIR.parent,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


# --- the tests --------------------------------------------------------------------------------------


def test_the_import_graph_reads_every_kind_of_import():
    imports = module_imports()
    assert "tes_cts.settings_error" in imports["tes_cts.auth.config"]  # from ..settings_error import ...
    assert "tes_cts.api.errors" in imports["tes_cts.api.app"]  # from . import errors
    assert "tes_cts.api.app" in imports["tes_cts.wiring"]  # inside build_app
    assert "tes_cts.database.mongo" in imports["tes_cts.database"]  # inside open_database
    assert "tes_cts" in imports["tes_cts.api.service_info"]  # from .. import __version__


def test_the_api_loads_neither_the_composition_root_nor_the_poller_nor_a_backend():
    loaded = modules_loaded_by("import tes_cts.api.app")
    assert "tes_cts.api.app" in loaded
    unwanted = sorted(module for module in loaded if module == "tes_cts.wiring"
                      or node_of(module) in ("tes_cts.poller", "tes_cts.backends"))
    assert not unwanted, f"importing tes_cts.api.app loads {unwanted}"


def test_the_task_database_loads_pymongo_only_for_mongodb():
    loaded = modules_loaded_by("import tes_cts.database")
    assert "tes_cts.database.sqlite" in loaded
    assert not {"pymongo", "tes_cts.database.mongo"} & loaded


def test_no_import_cycle_between_packages():
    graph = package_graph()
    assert {"tes_cts.api", "tes_cts.auth", "tes_cts.database", "tes_cts.tasks", "tes_cts.wiring"} <= set(graph)
    cycles = [component for component in strongly_connected_components(graph) if len(component) > 1]
    assert not cycles, "import cycles between packages:\n" + "\n".join(describe_cycle(graph, c) for c in cycles)


def test_leaf_modules_import_nothing_of_the_project():
    imports = module_imports()
    for leaf in ("tes_cts.clock", "tes_cts.durations", "tes_cts.urls", "tes_cts.wakeup", "tes_cts.image_references", "tes_cts.causes"):
        assert not imports[leaf], f"{leaf} imports {sorted(imports[leaf])}"


def test_the_model_and_the_job_files_import_only_the_model_and_the_clock():
    imports = module_imports()
    allowed = {"tes_cts.model", "tes_cts.clock"}
    for module in [m for m in imports if node_of(m) == "tes_cts.model"] + ["tes_cts.jobfiles"]:
        outside = sorted(name for name in imports[module] if node_of(name) not in allowed)
        assert not outside, f"{module} imports {outside}"


def test_the_client_speaks_to_servers_only_through_their_api():
    imports = module_imports()
    allowed = {"tes_cts", "tes_cts.client", "tes_cts.storage", "tes_cts.durations"}
    for module in [m for m in imports if node_of(m) == "tes_cts.client"]:
        outside = sorted(name for name in imports[module] if node_of(name) not in allowed)
        assert not outside, f"{module} imports {outside}"


def test_the_client_verbs_load_no_http_or_s3_library_until_one_runs():
    loaded = modules_loaded_by("import tes_cts.client.task_cmd, tes_cts.client.run_cmd, tes_cts.client.storage_cmd")
    assert not {"requests", "boto3", "botocore", "tes_cts.storage"} & loaded


@pytest.mark.parametrize("statement", ["import tes_cts.cli, tes_cts.worker.run", "import tes_cts.worker.launcher"])
def test_the_worker_and_its_launcher_load_no_settings_web_framework_or_database_driver(statement):
    loaded = modules_loaded_by(statement)
    assert not {"tes_cts.settings", "dynaconf", "flask", "connexion", "pymongo", "tes_cts.database"} & loaded
