"""The package's import structure: no import circles between bn_zoo modules
and no import up a floor.

Every `import` statement of `bn_zoo/` and of the `trainers/` and `configs/`
folders is read with `ast` (module level and inside functions alike; both
run sooner or later), resolved to the bn_zoo module it names, and checked
against two rules:

- **No circle**: no module reaches itself through imports (Tarjan's
  strongly connected components of the import graph).
- **No import up a floor**: a module imports only from its own floor or
  below. The floors, from the ground up:

      layers < data < population, callbacks < models < training, runs
             < export, evaluation, paper, results, plots < trainers, configs

  `import bn_zoo` (the package's face) stands on the models floor: it
  imports layers, population, callbacks and models, and nothing above
  (those it hands on lazily, with `importlib`, which no rule here follows;
  nor do the old paths kept by `bn_zoo._deprecation`, which import their new
  home only when an old name is read). `bn_zoo.trainers` and
  `bn_zoo.configs`, the installed names of the top-level folders, count as
  `trainers` and `configs`.

`ALLOWED` lists the violations known today in packages that are being
reorganized elsewhere (training, export, evaluation, results, plots); each
is printed when the test runs. Remove an entry as soon as its violation is
gone: the test fails on an entry that no longer matches anything, so the
list can only shrink.
"""

import ast
import os
import pathlib

import pytest

import commands

ROOT = pathlib.Path(commands.ROOT)
SCANNED = ("bn_zoo", "trainers", "configs")

# Floor of each first-level name under bn_zoo (and of the top-level folders).
FLOORS = {
    "bn_zoo._deprecation": 0,
    "bn_zoo.import_paths": 0,
    "bn_zoo.atomic_files": 0,
    "bn_zoo.layers": 1,
    "bn_zoo.data": 2,
    "bn_zoo.population": 3,
    "bn_zoo.population_checks": 3,
    "bn_zoo.callbacks": 3,
    "bn_zoo.models": 4,
    "bn_zoo.convert": 4,  # deprecated alias of bn_zoo.models.releases
    "bn_zoo": 4,  # the package's face, see the module docstring
    "bn_zoo.training": 5,
    "bn_zoo.runs": 5,
    "bn_zoo.export": 6,
    "bn_zoo.evaluation": 6,
    "bn_zoo.paper": 6,
    "bn_zoo.results": 6,
    "bn_zoo.plots": 6,
    "trainers": 7,
    "configs": 7,
}

# Violations in the areas other work is reorganizing, as
# ("circle" | "up", importer, imported). A circle is named by its first two
# modules in sorted order.
ALLOWED = {
}


def _module_files():
    """{dotted module name: path} of every scanned .py file."""
    modules = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_package(name, modules):
    return modules[name].name == "__init__.py"


def _resolve(node, importer, modules):
    """The scanned modules an import statement names."""
    if isinstance(node, ast.Import):
        return {_longest_module(alias.name, modules) for alias in node.names} - {None}
    if node.level:  # relative: from the importer's package
        package = importer if _is_package(importer, modules) else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module
    found = set()
    for alias in node.names:
        candidate = _canonical(f"{base}.{alias.name}")
        if candidate in modules:  # `from package import submodule`
            found.add(candidate)
        else:
            found.add(_longest_module(base, modules))
    return found - {None}


def _canonical(name):
    """Installed, the top-level folders are bn_zoo.trainers and bn_zoo.configs."""
    for folder in ("trainers", "configs"):
        if name == f"bn_zoo.{folder}" or name.startswith(f"bn_zoo.{folder}."):
            return name[len("bn_zoo."):]
    return name


def _longest_module(name, modules):
    name = _canonical(name)
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    """{module: {imported module: line}} over the scanned folders."""
    modules = _module_files()
    graph = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(node, name, modules):
                    if target != name and not name.startswith(target + "."):
                        # A module's own package (__init__) is not an import
                        # of its own: Python runs it first in any case.
                        edges.setdefault(target, node.lineno)
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
    return found


def floor(module):
    """The floor of `module`: that of its first-level name (`bn_zoo.models`
    for `bn_zoo.models.hub`, `trainers` for `trainers.train`), or of
    `bn_zoo` itself; None for a first-level name not in FLOORS."""
    parts = module.split(".")
    first = ".".join(parts[:2]) if parts[0] == "bn_zoo" and len(parts) > 1 else parts[0]
    return FLOORS.get(first)


def violations(graph):
    """{(kind, importer, imported): description}."""
    found = {}
    for component in circles(graph):
        members = set(component)
        ties = [f"{a} -> {b} (line {line})" for a in component
                for b, line in sorted(graph[a].items()) if b in members]
        found[("circle", component[0], component[1])] = (
            f"import circle of {len(component)} modules: " + "; ".join(ties))
    for importer, targets in graph.items():
        for imported, line in targets.items():
            if floor(imported) > floor(importer):
                found[("up", importer, imported)] = (
                    f"{importer} (floor {floor(importer)}) imports {imported} "
                    f"(floor {floor(imported)}) at line {line}")
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_stands_on_a_floor(graph):
    unplaced = sorted(m for m in graph if floor(m) is None)
    assert not unplaced, (
        f"No floor for {unplaced}: add each new first-level name to FLOORS in "
        f"{os.path.basename(__file__)}.")


def test_the_reader_sees_real_imports(graph):
    # Independent of the rules: edges that the code is known to have.
    assert "bn_zoo.layers.batch_normalization" in graph["bn_zoo.layers"]
    assert "bn_zoo.layers.moments" in graph["bn_zoo.layers.fused"]
    # A function-level import counts as much as a module-level one.
    assert "bn_zoo.layers.refusal" in graph["bn_zoo.layers.training"]


def test_no_import_circle_and_no_import_up_a_floor(graph):
    found = violations(graph)
    allowed = {key: text for key, text in found.items() if key in ALLOWED}
    if allowed:
        print(f"\nAllowed for now ({len(allowed)}, see ALLOWED):")
        for key in sorted(allowed):
            print(f"  {key[0]}: {allowed[key]}")
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"ALLOWED entries that no longer occur (remove them): {stale}"
    new = {key: text for key, text in found.items() if key not in ALLOWED}
    assert not new, "\n".join(
        ["Import circles or imports up a floor:"] + [f"  {new[k]}" for k in sorted(new)])
