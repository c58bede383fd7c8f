"""Build the Blender add-on zip: ``python build_addon.py`` -> ``dist/audio_cppn-<version>.zip``.

The zip holds one folder, ``audio_cppn/``, with the add-on's Python modules and its
``blender_manifest.toml``: Blender 4.2+ installs it as an extension (Get Extensions > Install from
Disk, or ``blender --command extension install-file``), older Blenders as a legacy add-on through
the ``bl_info`` in ``__init__.py``. Plain ``zipfile``, no bpy. The build is reproducible (sorted
entries, fixed timestamps) and written under a temporary name, then renamed into place.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "blender_addon"
ADDON_ID = "audio_cppn"
MANIFEST = "blender_manifest.toml"
INCLUDE_SUFFIXES = (".py", ".toml")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold: same input, same bytes


class BuildError(Exception):
    """The add-on sources disagree with themselves; the message says where."""


def addon_version(source: Path = SOURCE) -> str:
    """The version in ``blender_manifest.toml``, after checking ``bl_info`` and pyproject agree."""
    manifest = tomllib.loads((source / MANIFEST).read_text(encoding="utf-8"))
    for key in ("id", "version", "blender_version_min", "name", "tagline", "type"):
        if not manifest.get(key):
            raise BuildError(f"{source / MANIFEST} has no '{key}'")
    if manifest["id"] != ADDON_ID:
        raise BuildError(f"{source / MANIFEST}: id must be {ADDON_ID!r}, got {manifest['id']!r}")
    version = manifest["version"]
    bl_version = ".".join(str(v) for v in bl_info(source)["version"])
    if bl_version != version:
        raise BuildError(f"bl_info version {bl_version} in {source / '__init__.py'} differs from "
                         f"{MANIFEST} version {version}; make them equal")
    pyproject = source.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("version")
        if project and project != version:
            raise BuildError(f"pyproject.toml version {project} differs from {MANIFEST} version {version}; "
                             "the add-on and the backend are released together")
    return version


def bl_info(source: Path = SOURCE) -> dict:
    """``bl_info`` from ``__init__.py``, read without importing it (the package needs bpy)."""
    tree = ast.parse((source / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "bl_info" for t in node.targets):
            return ast.literal_eval(node.value)
    raise BuildError(f"{source / '__init__.py'} has no bl_info")


def addon_files(source: Path = SOURCE) -> list[Path]:
    """The files that go into the zip, sorted: modules and the manifest, no caches or dotfiles."""
    files = [p for p in source.rglob("*") if p.is_file() and p.suffix in INCLUDE_SUFFIXES
             and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(source).parts)]
    return sorted(files, key=lambda p: p.relative_to(source).as_posix())


def build(out_dir: str | Path = ROOT / "dist", *, source: Path = SOURCE) -> Path:
    """Write ``<out_dir>/audio_cppn-<version>.zip`` and return its path."""
    version = addon_version(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{ADDON_ID}-{version}.zip"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in addon_files(source):
                entry = zipfile.ZipInfo(f"{ADDON_ID}/{path.relative_to(source).as_posix()}", FIXED_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, path.read_bytes())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the installable Blender add-on zip (a 4.2+ extension that also carries "
                    "bl_info for older Blenders).",
        epilog="example:\n  python build_addon.py                 # -> dist/audio_cppn-0.1.0.zip\n"
               "  blender --command extension install-file -r user_default -e dist/audio_cppn-0.1.0.zip",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", default=str(ROOT / "dist"), help="folder for the zip (default: dist/)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out_dir)
    except (BuildError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
