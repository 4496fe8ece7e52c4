"""The import graph of `distill/`, drawn by layers: rooms, imports between them, imports that point back up, cycles.

A room is a subpackage (distill/curate/, ...) or a top-level module (distill/config.py, ...). Every import counts,
function-local ones too (an import moved into a function to dodge a cycle is still a dependency). Rooms are put on
layers by the longest chain of imports below them; rooms in one cycle share a layer, and the imports that close a
cycle are the ones that point back up.

    python bench/import_graph.py            # the figures
    python bench/import_graph.py --rooms    # and each room with its layer and what it imports
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "distill"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The distill modules `path` imports, anywhere in its body."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import module` imports the module; `from module import name`, the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def room_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return module
    sub = PACKAGE / parts[1]
    return ".".join(parts[:2]) if sub.is_dir() else module


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components, iteratively."""
    index, low, stack, on_stack, comps, counter = {}, {}, [], set(), [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.add(member)
                        if member == node:
                            break
                    comps.append(comp)

    for node in nodes:
        if node not in index:
            visit(node)
    return comps


def graph() -> dict:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    module_edges = {module_name(p): imported_modules(p, modules) for p in files}
    rooms = sorted({room_of(m) for m in modules} - {"distill"})
    room_edges: dict[str, set[str]] = defaultdict(set)
    for source, targets in module_edges.items():
        for target in targets:
            a, b = room_of(source), room_of(target)
            if a != b and "distill" not in (a, b):  # distill/__init__.py is the package itself, not a room
                room_edges[a].add(b)
    module_cycles = [c for c in strongly_connected(sorted(module_edges), module_edges) if len(c) > 1]
    room_cycles = [c for c in strongly_connected(rooms, room_edges) if len(c) > 1]
    comp_of = {room: i for i, comp in enumerate(strongly_connected(rooms, room_edges)) for room in comp}
    # Layer of a room: 0 for rooms that import no other room, else one above the highest room it imports
    # outside its own cycle.
    layer: dict[str, int] = {}

    def layer_of(room: str, seen: frozenset = frozenset()) -> int:
        if room not in layer:
            below = [layer_of(t, seen | {room}) for t in room_edges.get(room, ())
                     if comp_of[t] != comp_of[room] and t not in seen]
            layer[room] = 1 + max(below) if below else 0
        return layer[room]

    for room in rooms:
        layer_of(room)
    back_up = sorted((a, b) for a in rooms for b in room_edges.get(a, ()) if comp_of[a] == comp_of[b])
    return {"rooms": rooms, "room_edges": room_edges, "layer": layer, "module_cycles": module_cycles,
            "room_cycles": room_cycles, "back_up": back_up}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", action="store_true", help="list each room with its layer and imports")
    args = parser.parse_args()
    g = graph()
    edges = sum(len(v) for v in g["room_edges"].values())
    layers = max(g["layer"].values()) + 1
    print(f"rooms: {len(g['rooms'])}   layers: {layers}   imports between rooms: {edges}")
    print(f"imports that point back up (close a cycle between rooms): {len(g['back_up'])}"
          + "".join(f"\n  {a} -> {b}" for a, b in g["back_up"]))
    cycles = g["module_cycles"]
    print(f"cycles between modules: {len(cycles)}" + "".join(f"\n  {' <-> '.join(sorted(c))}" for c in cycles))
    if args.rooms:
        for room in sorted(g["rooms"], key=lambda r: (g["layer"][r], r)):
            print(f"  L{g['layer'][room]:<2} {room:28} -> {', '.join(sorted(g['room_edges'].get(room, ())))}")


if __name__ == "__main__":
    main()
