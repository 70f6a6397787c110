"""The package's shape: layers a reader can follow from the folder list, imports only going down.

Every import counts: at module level, inside functions and under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "psp_lite"

#: The layers, lowest first. A module may import from its own layer or a lower one; inside the
#: core and inside a subpackage the graph must still be free of cycles.
LAYERS: list[set[str]] = [
    {"paper", "device", "potentials", "regularizers", "models"},  # the PSP core
    {"data"},
    {"analytic"},
    {"training"},
    {"store"},
    {"runners"},
    {"report"},
    {"experiments"},
    {"explorer"},
    {"teaching"},
    {"cli"},
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """psp_lite modules (or packages) that `path` imports, wherever the import statement is."""
    found = set()
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
        # `from psp_lite.a import b` also depends on the package psp_lite.a itself
        found |= {n.rpartition(".")[0] for n in names if n.rpartition(".")[0] in modules
                  and n not in modules}
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def unit(module: str) -> str:
    """The top-level entry a module belongs to: 'psp_lite.store.cache' -> 'store'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "psp_lite"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest import path in an acyclic graph, as the list of its nodes."""
    best: dict[str, list[str]] = {}

    def chain(node: str) -> list[str]:
        if node not in best:
            tails = [chain(n) for n in graph.get(node, ()) if n != node]
            best[node] = [node, *max(tails, key=len, default=[])]
        return best[node]

    return max((chain(n) for n in graph), key=len)


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        graph.setdefault(unit(module), set()).update(
            unit(d) for d in deps if unit(d) != unit(module))
    return graph


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_chain_finder_measures_a_planted_chain():
    assert longest_chain({"a": {"b", "d"}, "b": {"c"}, "c": set(), "d": set()}) == ["a", "b", "c"]


def test_the_graph_sees_every_kind_of_import(tmp_path):
    assert "psp_lite.store.cache" in import_graph()["psp_lite.runners.cached"]
    source = tmp_path / "psp_lite" / "x.py"
    source.parent.mkdir()
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from psp_lite.cli import main\ndef f():\n    import psp_lite.report\n"
                      "from .store import cache\n")
    modules = {"psp_lite.cli", "psp_lite.report", "psp_lite.store", "psp_lite.store.cache",
               "psp_lite.x"}
    assert imports_of(source, modules, tmp_path / "psp_lite") == {
        "psp_lite.cli", "psp_lite.report", "psp_lite.store", "psp_lite.store.cache"}


def test_every_top_level_entry_is_a_ranked_layer_and_there_are_at_most_16():
    entries = sorted(p.stem for p in PACKAGE.iterdir()
                     if p.name != "__pycache__" and (p.suffix == ".py" or p.is_dir()))
    assert len(entries) <= 16, entries
    assert set(entries) - {"__init__"} == set(RANK), set(entries) ^ set(RANK)


def test_every_subpackage_has_a_public_face():
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = folder / "__init__.py"
        assert init.exists(), folder
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{folder.name}/__init__.py says what the layer is for"
        assert any(isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__"
                   for n in tree.body), f"{folder.name}/__init__.py lists its public names"


def test_imports_only_go_down_the_layers():
    upward = [f"{m} imports {d}" for m, deps in import_graph().items() if unit(m) != "psp_lite"
              for d in deps if unit(d) != "psp_lite" and RANK[unit(d)] > RANK[unit(m)]]
    assert not upward, "\n".join(upward)


def test_nothing_inside_the_package_imports_the_facade():
    inside = [m for m, deps in import_graph().items() if m != "psp_lite" and "psp_lite" in deps]
    assert not inside, inside


def test_no_import_cycle_between_modules_or_layers():
    graph = {m: deps - {"psp_lite"} for m, deps in import_graph().items() if m != "psp_lite"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    layers = {u: deps - {"psp_lite"} for u, deps in unit_graph().items() if u != "psp_lite"}
    cycle = find_cycle(layers)
    assert cycle is None, "layer cycle: " + " -> ".join(cycle)


def test_the_longest_chain_between_top_level_units_is_at_most_8():
    graph = {u: deps - {"psp_lite"} for u, deps in unit_graph().items() if u != "psp_lite"}
    chain = longest_chain(graph)
    print("longest chain:", " -> ".join(chain))
    assert len(chain) <= 8, " -> ".join(chain)


@pytest.mark.parametrize("name", ["capture", "psp_penalty", "l2_penalty", "mean_square",
                                  "RunConfig", "RunHistory", "train", "run", "run_many",
                                  "train_many", "load_dataset", "get_model", "list_models",
                                  "pick_device"])
def test_the_contract_is_one_import_away(name):
    import psp_lite

    assert callable(getattr(psp_lite, name))
    assert name in psp_lite.__all__
