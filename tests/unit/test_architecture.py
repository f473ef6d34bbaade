"""Which of our modules may import which: the engine <- the contract <- connectors <- shells <- CLI.

Every `import` in the source (at module level or inside a function alike) is an edge; the layers
below say where an edge may point, and the graph of our modules must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "connectors", "micromarketing", "schemas")

#: layer of a module (first matching prefix wins), lowest first
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("engine", ("streams.engine",)),
    ("contract", ("streams.contract", "streams.codec", "schemas", "streams.compiled")),
    ("connectors", ("connectors",)),
    ("shells", ("streams",)),
    ("cli", ("micromarketing",)),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of our packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def layer(module: str) -> str:
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    raise AssertionError(f"{module} is in no layer")


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `path` imports (`from a import b` is a.b when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        out.update(n for n in names if n in known)
    return out


GRAPH = {m: imports(p, modules()) for m, p in modules().items()}


def test_the_layers_cover_the_contract_and_the_engine() -> None:
    assert layer("streams.contract") == "contract"
    assert layer("streams.engine.core") == "engine"
    assert layer("streams.replay_topics") == "shells"
    assert "streams.contract" in GRAPH and "connectors.sources.topics" in GRAPH


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers_only(module: str) -> None:
    upward = sorted(m for m in GRAPH[module] if RANK[layer(m)] > RANK[layer(module)])
    assert not upward, f"{module} ({layer(module)}) imports {upward}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of `graph` closes, as the modules along it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycles.append([*path[path.index(n):], n])
            elif n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycles() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_a_function_level_import_is_an_edge_and_closes_a_cycle(tmp_path: Path) -> None:
    """The old replay <-> topic reader pair: one import at module level, one in a function."""
    reader = tmp_path / "reader.py"
    reader.write_text("from streams.replay import replay\n")
    shell = tmp_path / "shell.py"
    shell.write_text("def run():\n    from connectors.sources.topics import read_range\n")
    known = {"streams.replay": shell, "connectors.sources.topics": reader}
    graph = {m: imports(p, known) for m, p in known.items()}
    assert graph == {
        "streams.replay": {"connectors.sources.topics"},
        "connectors.sources.topics": {"streams.replay"},
    }
    assert find_cycles(graph) == [
        ["connectors.sources.topics", "streams.replay", "connectors.sources.topics"]
    ]
    assert layer("connectors.sources.topics") == "connectors"
    assert RANK[layer("streams.replay")] > RANK["connectors"]  # so that edge is refused too
