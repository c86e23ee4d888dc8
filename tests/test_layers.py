"""The package's folders form layers: a module imports only from its own folder and the layers below.

Every import counts, also one inside a function (a lazy import is still a dependency), so no cycle
between folders can form and the codec's path stays free of training, benchmark and plotting code.
What each entry point loads is checked in fresh interpreters: ``import aecodec`` and ``aecodec info``
load no torch, and compressing needs none of the optional extras.
"""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

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


def loaded_after(code: str) -> set[str]:
    """Top-level modules a fresh interpreter has imported after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sorted({{m.partition('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_import_aecodec_loads_no_torch_and_the_codec_no_plotting() -> None:
    assert not loaded_after("import aecodec") & {"torch", "matplotlib", "scipy"}
    assert "torch" not in loaded_after("import aecodec.bitstream")
    assert not loaded_after("import aecodec; aecodec.Codec") & {"matplotlib", "scipy", "compressai"}


def test_info_reads_a_header_without_torch(codec, tmp_path: Path) -> None:
    path = tmp_path / "x.aec"
    path.write_bytes(codec.compress(np.zeros((20, 30, 4), dtype=np.uint8), 1))  # RGBA: a chunk to list
    loaded = loaded_after(f"from aecodec.cli import main\nassert main(['info', {str(path)!r}]) == 0")
    assert "torch" not in loaded


def test_compressing_needs_no_optional_extra(model_file: Path, tmp_path: Path) -> None:
    """The runtime dependencies suffice: training and benchmark libraries are blocked from importing."""
    image = tmp_path / "in.png"
    Image.fromarray(np.full((40, 50, 3), 99, dtype=np.uint8)).save(image)
    aec, back = tmp_path / "x.aec", tmp_path / "back.png"
    blocked = ("tqdm", "matplotlib", "scipy", "compressai")
    code = (
        f"for name in {blocked!r}:\n    sys.modules[name] = None\n"
        "from aecodec.cli import main\n"
        f"assert main(['compress', {str(image)!r}, {str(aec)!r}, '--model', {str(model_file)!r}]) == 0\n"
        f"assert main(['decompress', {str(aec)!r}, {str(back)!r}, '--model', {str(model_file)!r}]) == 0"
    )
    loaded_after(code)
    assert Image.open(back).size == (50, 40)
