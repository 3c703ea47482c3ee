"""The rooms import only downward, and no module imports itself back through others (no cycle).

Rooms, bottom to top: the core modules at the package root, then data, models, scene, eot, attacks,
printing, defenses, training, harness, report, jobs, cli. Every import counts, also the ones inside
functions: a lazy import hides a knot, it does not untie it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import physadv

ROOMS = (
    "core", "data", "models", "scene", "eot", "attacks", "printing", "defenses", "training",
    "harness", "report", "jobs", "cli",
)  # fmt: skip
PACKAGE = Path(physadv.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    if module == "physadv.__main__":
        return "cli"  # `python -m physadv` is the command line
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else "core"


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("physadv"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("physadv")]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_rooms_import_only_downward():
    rank = {room: i for i, room in enumerate(ROOMS)}
    upward = [
        f"{src} ({_room(src)}) imports {dst} ({_room(dst)})"
        for src, targets in _imports().items()
        for dst in targets
        if dst != "physadv" and rank[_room(dst)] > rank[_room(src)]
    ]
    assert not upward, "imports that run up the rooms:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _imports()
    graph = {k: {t for t in v if t != "physadv" and not k.startswith(t + ".")} for k, v in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_room_is_known():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert rooms <= set(ROOMS), f"rooms without a place in the order: {sorted(rooms - set(ROOMS))}"
