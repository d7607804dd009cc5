"""The package's architecture, read from its source: one-way layers and no import cycles.

Layers, lowest first (each may import only layers below it):
  bindings (_spotcore, _kernels) -> registry, _shared -> API (core, camera, camera_estimate, options, simulate, smlm, bounds,
  evaluate, render, _include) -> io | ml | distributed (ml and distributed may use io) -> cli, the front door
  (_front) and the package __init__; the napari plugin (spotfit.napari) on top, which nothing imports.
Imports inside functions count: a lazy import is still an arrow.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import spotfit

ROOT = Path(spotfit.__file__).resolve().parent
if not (ROOT / "core.py").is_file():  # an installed copy without sources: read the checkout's
    ROOT = Path(__file__).resolve().parents[1] / "python" / "spotfit"

API = {"spotfit.core", "spotfit.camera", "spotfit.camera_estimate", "spotfit.options", "spotfit.simulate",
       "spotfit.smlm", "spotfit.bounds", "spotfit.evaluate", "spotfit.render", "spotfit._include",
       "spotfit.astigmatism", "spotfit.calibrate3d"}
BINDINGS = {"spotfit._spotcore", "spotfit._kernels"}   # compiled: the lowest layer
DEPRECATED = {"spotfit.classify", "spotfit.patches", "spotfit.quality", "spotfit.realtime", "spotfit.regress"}


def layer(module: str) -> str:
    if module == "spotfit.registry":
        return "registry"
    for prefix in ("spotfit._shared", "spotfit.io", "spotfit.ml", "spotfit.cli", "spotfit.napari"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    if module in API or module == "spotfit.postprocess" or module.startswith("spotfit.postprocess."):
        return "api"
    if module == "spotfit.distributed":
        return "distributed"
    if module in DEPRECATED:
        return "deprecated"
    return "top"   # spotfit (__init__), spotfit._front


# What each layer may import (besides itself and the bindings).
ALLOWED = {
    "registry": set(),
    "_shared": {"registry"},
    "api": {"registry", "_shared"},
    "io": {"registry", "_shared", "api"},
    "ml": {"registry", "_shared", "api", "io"},
    "distributed": {"registry", "_shared", "api", "io", "ml"},
    "cli": {"registry", "_shared", "api", "io", "ml", "distributed", "top"},
    "deprecated": {"_shared"},
    "top": {"registry", "_shared", "api", "io", "ml", "distributed", "cli", "deprecated"},
    "napari": {"registry", "_shared", "api", "io", "ml", "top"},   # loaded by napari only, never by spotfit
}


def modules() -> dict:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods: dict) -> dict:
    """module -> set of spotfit modules it imports (at any depth of the code)."""
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods or f"{src}.{a.name}" in BINDINGS
                           else src for a in node.names]
            for t in targets:
                if t in BINDINGS:
                    continue
                while t and t not in mods and t.startswith("spotfit"):
                    t = t.rpartition(".")[0]   # a name inside a module
                if t in mods and t != name:
                    found.add(t)
        graph[name] = found
    return graph


GRAPH = imports(modules())


def test_the_graph_is_read():
    assert "spotfit.core" in GRAPH and "spotfit.ml.regress" in GRAPH and "spotfit.io.movies" in GRAPH
    assert "spotfit.core" in GRAPH["spotfit.ml.regress"]      # ml is built on the API
    assert "spotfit.camera" in GRAPH["spotfit.io.movies"]     # io builds cameras from metadata


def test_no_import_cycles():
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_layers_point_one_way():
    wrong = sorted(f"{m} ({layer(m)}) imports {t} ({layer(t)})" for m, targets in GRAPH.items() for t in targets
                   if layer(t) != layer(m) and layer(t) not in ALLOWED[layer(m)])
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("layer_name", ["api", "registry", "_shared"])
def test_the_api_imports_no_ml_files_cli_or_dask(layer_name):
    banned = ("spotfit.ml", "spotfit.io", "spotfit.cli", "spotfit.distributed", "spotfit._front")
    hits = [(m, t) for m, targets in GRAPH.items() if layer(m) == layer_name for t in targets
            if t.startswith(banned)]
    assert not hits


def test_import_spotfit_stays_light():
    code = ("import sys, spotfit; heavy = ('spotfit.ml', 'spotfit.distributed', 'spotfit.bounds', 'sklearn', "
            "'dask', 'tensorflow', 'h5py', 'matplotlib', 'tifffile', 'tqdm'); "
            "print(sorted({m.split('.')[0] if not m.startswith('spotfit') else '.'.join(m.split('.')[:2]) "
            "for m in sys.modules if m.startswith(heavy)}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"import spotfit loads {out.stdout.strip()}"
