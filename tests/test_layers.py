"""The layout is the pipeline: every backend module imports only its own layer and the ones before
it, and the Blender add-on only the standard library and bpy.

Layers, first to last (``backend/*.py`` at the top level is the core everyone may use)::

    core < audio < writers < model < styles < clip < {render, train} < {cli, server}

Peers (render and train; cli and server) must not import each other. ``backend/__main__.py`` runs
the command line, so it sits with cli. Imports inside functions count: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"
ADDON = ROOT / "blender_addon"
LAYERS = ({"core"}, {"audio"}, {"writers"}, {"model"}, {"styles"}, {"clip"}, {"render", "train"}, {"cli", "server"})
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
# Blender's own modules an add-on may use besides bpy.
BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "bl_ui", "bl_operators", "bl_math", "gpu", "gpu_extras",
                   "blf", "bmesh", "aud", "idprop", "imbuf"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, at any depth; relative ones resolved.

    ``from a import b`` counts as ``a.b`` when ``b`` is a module or package, else as ``a``.
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                is_module = (root / Path(*full.split("."))).with_suffix(".py").is_file() or \
                    (root / Path(*full.split("."))).is_dir()
                found.append((node.lineno, full if is_module else base))
    return found


def layer_of(module: str) -> str:
    """The layer a ``backend`` module belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] not in RANK:  # the package itself or a top-level module
        return "cli" if parts[-1] == "__main__" else "core"
    return parts[1]


def layer_problems(path: Path, root: Path = ROOT) -> list[str]:
    importer = module_name(path, root)
    mine = layer_of(importer)
    problems = []
    for line, imported in imports_of(path, root):
        if imported.split(".")[0] != "backend":
            continue
        theirs = layer_of(imported)
        if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine):
            problems.append(f"{importer} ({mine}) imports {imported} ({theirs}) at line {line}")
    return problems


BACKEND_FILES = sorted(BACKEND.rglob("*.py"))


def test_every_backend_package_is_a_known_layer():
    packages = {p.parent.name for p in BACKEND.glob("*/__init__.py")}
    assert packages <= set(RANK), f"packages with no layer: {sorted(packages - set(RANK))}"
    assert {"audio", "writers", "model", "styles", "clip", "render", "train", "cli"} <= packages


@pytest.mark.parametrize("path", BACKEND_FILES, ids=lambda p: str(p.relative_to(BACKEND)))
def test_no_backend_module_imports_a_later_layer_or_a_peer(path):
    problems = layer_problems(path)
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("path", sorted(ADDON.rglob("*.py")), ids=lambda p: str(p.relative_to(ADDON)))
def test_the_addon_imports_only_the_standard_library_bpy_and_itself(path):
    allowed = set(sys.stdlib_module_names) | BLENDER_MODULES
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative imports are the add-on itself
            names = [node.module]
        else:
            continue
        problems += [f"{path.relative_to(ROOT)} imports {n} at line {node.lineno}"
                     for n in names if n.split(".")[0] not in allowed]
    assert not problems, "; ".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A later layer imported inside a function, a peer through 'from backend import x', a relative
    import: each is found and named."""
    fake = tmp_path / "backend"
    for package in ("audio", "model", "render", "train"):
        (fake / package).mkdir(parents=True)
        (fake / package / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("__version__ = '0'\n")
    (fake / "model" / "cppn.py").write_text("")
    features = fake / "audio" / "features.py"
    features.write_text("import numpy\nfrom backend import __version__\n\ndef f():\n    from backend.model import cppn\n")
    assert imports_of(features, tmp_path) == [(1, "numpy"), (2, "backend"), (5, "backend.model.cppn")]
    assert layer_problems(features, tmp_path) == [
        "backend.audio.features (audio) imports backend.model.cppn (model) at line 5"]
    job = fake / "render" / "job.py"
    job.write_text("from backend import train\nfrom ..model.cppn import CPPN\nfrom . import job\n")
    assert imports_of(job, tmp_path) == [(1, "backend.train"), (2, "backend.model.cppn"), (3, "backend.render.job")]
    assert layer_problems(job, tmp_path) == ["backend.render.job (render) imports backend.train (train) at line 1"]
    assert layer_of("backend.paths") == "core" and layer_of("backend") == "core"
    assert layer_of("backend.__main__") == "cli"
