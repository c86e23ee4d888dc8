"""The package's folders form layers: a module imports only from its own folder and the layers below.

Every import counts, also one inside a function (a lazy import is still a dependency), so no cycle
between folders can form and the codec's path stays free of training, benchmark and plotting code.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aecodec"
# Lowest first. `testing` (fixtures) builds models with the exporter; tools in `bench` use it.
LAYERS = ("errors", "bitstream", "models", "codec", "training", "testing", "bench", "family", "cli", "")


def layer(module: str) -> str:
    """The layer of a dotted module name inside the package ("" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> set[str]:
    """Every aecodec module ``path`` imports, at any depth of its code, relative imports resolved."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "aecodec" or name.startswith("aecodec.")}


def module_imports() -> dict[str, set[str]]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_folder_has_a_layer() -> None:
    unknown = {layer(m) for m in module_imports()} - set(LAYERS) - {"__main__", "__init__"}
    assert not unknown, f"place {sorted(unknown)} in LAYERS"


def test_imports_only_go_down() -> None:
    rank = {name: n for n, name in enumerate(LAYERS)} | {"__main__": len(LAYERS), "__init__": len(LAYERS)}
    upward = sorted(
        f"{importer} imports {imported}"
        for importer, names in module_imports().items()
        for imported in names
        if layer(importer) != layer(imported) and rank[layer(imported)] > rank[layer(importer)]
    )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_cycle_between_folders() -> None:
    edges: dict[str, set[str]] = {}
    for importer, names in module_imports().items():
        edges.setdefault(layer(importer), set()).update(layer(n) for n in names if layer(n) != layer(importer))

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(folder for folder in edges if folder in reachable(folder))
    assert not cycles, f"folders in an import cycle: {cycles}"
