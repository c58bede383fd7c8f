"""Style files and the style library: a folder of ``<name>.safetensors`` (+ ``<name>.png`` preview).

Weights are safetensors (never pickle). The safetensors header's ``__metadata__`` holds one
key, ``audio_cppn``: JSON with the format version, name, kind (``procedural`` or ``trained``),
the :class:`CPPNConfig` that rebuilds the network, and free-form metadata (prompt, CLIP model,
steps, similarity, seed, created, ...).

The library folder is ``--styles-dir``, else ``$AUDIO_CPPN_STYLES``, else the project's ``styles/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from backend.atomic import atomic_path
from backend.model.cppn import CPPN, CPPNConfig
from backend.errors import InvalidInput, NotFound
from backend.paths import DEFAULT_STYLE, STYLES_ENV, bundled_styles_dir, default_styles_dir  # noqa: F401 (library API)

FORMAT_VERSION = 1
METADATA_KEY = "audio_cppn"
SUFFIX = ".safetensors"
KINDS = ("procedural", "trained")
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Style:
    name: str
    kind: str  # "procedural" or "trained"
    model: CPPN
    metadata: dict = field(default_factory=dict)  # prompt, clip model, steps, similarity, seed, created...
    path: Path | None = None
    sha256: str = ""  # of the style file; renders record it


def check_style_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidInput(f"style name {name!r} must be 1-64 letters, digits, '-', '_' or '.', "
                           "starting with a letter or digit")
    return name


def style_path(name_or_path: str | os.PathLike, styles_dir: Path | None = None) -> Path:
    """A style's file: an existing path as given, else ``<styles_dir>/<name>.safetensors``, else a
    bundled style of that name (so ``demo`` and the default style work with any library folder)."""
    text = str(name_or_path)
    candidate = Path(text)
    # A path only when it looks like one: a folder that happens to be called "aurora" is not a style.
    if text.endswith(SUFFIX) or os.sep in text or "/" in text:
        if not candidate.is_file():
            raise NotFound(f"style file not found: {candidate}")
        return candidate
    folder = styles_dir or default_styles_dir()
    path = folder / f"{text}{SUFFIX}"
    bundled = bundled_styles_dir()
    if not path.is_file() and bundled is not None and (bundled / f"{text}{SUFFIX}").is_file():
        return bundled / f"{text}{SUFFIX}"  # the shipped styles stay usable by name beside any library
    if not path.is_file():
        names = ", ".join(s.stem for s in sorted(folder.glob(f"*{SUFFIX}"))) or "none"
        raise NotFound(f"no style named {text!r} in {folder} (available: {names})",
                       fix="run 'audio-cppn styles' to list the library")
    return path


def save_style(model: CPPN, path: Path, *, name: str, kind: str, metadata: dict | None = None) -> Path:
    """Write weights + header atomically (temporary name in the same folder, then rename)."""
    check_style_name(name)
    if kind not in KINDS:
        raise InvalidInput(f"style kind must be one of {KINDS}, got {kind!r}")
    header = {"format_version": FORMAT_VERSION, "name": name, "kind": kind,
              "config": model.config.to_dict(), "metadata": metadata or {}}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(header)})
    return path


def read_header(path: Path, data: bytes | None = None) -> dict:
    """The style header without loading weights (cheap, used for listing); ``data``: the file's bytes if read.

    Every field a caller relies on is checked here, so one odd file is one clear error, never a crash.
    """
    try:
        if data is None:
            with open(path, "rb") as f:
                first = f.read(8)
                n = int.from_bytes(first, "little")
                if len(first) < 8 or not 2 <= n <= MAX_HEADER_BYTES:  # bounded before reading it
                    raise ValueError("bad header length")
                data = first + f.read(n)
        n = int.from_bytes(data[:8], "little")
        if not 2 <= n <= min(MAX_HEADER_BYTES, len(data) - 8):
            raise ValueError("bad header length")
        header = json.loads(json.loads(data[8:8 + n])["__metadata__"][METADATA_KEY])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not an Audio CPPN style file ({type(exc).__name__}: {exc})") from None
    version = header.get("format_version")
    if not isinstance(version, int):
        raise InvalidInput(f"{path} has no style format version")
    if version > FORMAT_VERSION:
        raise InvalidInput(f"{path} uses style format {version}; this audio-cppn reads up to "
                           f"{FORMAT_VERSION}", fix="upgrade audio-cppn")
    for key in ("name", "kind", "config"):
        if key not in header:
            raise InvalidInput(f"{path} style header is missing {key!r}")
    if not isinstance(header["name"], str) or header["kind"] not in KINDS:
        raise InvalidInput(f"{path} style header has name {header['name']!r} and kind {header['kind']!r}; "
                           f"expected a text name and a kind of {', '.join(KINDS)}")
    metadata = header.setdefault("metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("prompt", ""), str):
        raise InvalidInput(f"{path} style metadata must be a JSON object with a text prompt")
    return header


def load_style(name_or_path: str | os.PathLike, *, styles_dir: Path | None = None,
               device: str | torch.device = "cpu") -> Style:
    """Load a style by library name or file path, rebuilding its network from the header."""
    path = style_path(name_or_path, styles_dir)
    try:
        data = path.read_bytes()  # read once: the weights loaded are the bytes hashed
    except OSError as exc:
        raise InvalidInput(f"cannot read style file {path}: {exc.strerror or exc}") from None
    header = read_header(path, data)
    config = _config(header, path)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise InvalidInput(f"{path} is corrupt: {exc}") from None
    with torch.device("meta"):  # shapes first: a header must not make us allocate what the file lacks
        expected = CPPN(config).state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise InvalidInput(f"{path} is missing {len(missing)} weights the config needs ({shown})")
    for key, value in expected.items():
        if tensors[key].shape != value.shape:
            raise InvalidInput(f"{path}: weight {key} has shape {tuple(tensors[key].shape)}, "
                               f"the config needs {tuple(value.shape)}")
        if not torch.isfinite(tensors[key]).all():
            raise InvalidInput(f"{path} is corrupt: weight {key} holds NaN or infinite values")
    model = CPPN(config)
    model.load_state_dict({k: tensors[k] for k in expected})
    model.eval().requires_grad_(False).to(device)
    return Style(name=header["name"], kind=header["kind"], model=model,
                 metadata=header["metadata"], path=path, sha256=hashlib.sha256(data).hexdigest())


def _config(header: dict, path: Path) -> CPPNConfig:
    config = header["config"]
    if not isinstance(config, dict):
        raise InvalidInput(f"{path} has an invalid config: expected a JSON object, got {type(config).__name__}")
    try:
        return CPPNConfig.from_dict(config)
    except InvalidInput as exc:
        raise InvalidInput(f"{path} has an invalid config: {exc.message}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} has an invalid config: {exc}") from None


@dataclass
class StyleInfo:
    name: str  # the file name without .safetensors: what --style takes
    kind: str
    prompt: str
    parameters: int
    path: str
    preview: str | None
    metadata: dict


def list_styles(styles_dir: Path | None = None, *, problems: list[str] | None = None) -> list[StyleInfo]:
    """Every readable style in the library folder, sorted by file name.

    Unreadable files are left out; pass a list as ``problems`` to receive one line per such file.
    """
    folder = Path(styles_dir) if styles_dir else default_styles_dir()
    if not folder.is_dir():
        raise NotFound(f"style library folder not found: {folder}")
    infos = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            header = read_header(path)
            with torch.device("meta"):
                n_params = CPPN(_config(header, path)).n_parameters
        except InvalidInput as exc:
            if problems is not None:
                problems.append(exc.message)
            continue
        preview = path.with_suffix(".png")
        meta = header["metadata"]
        infos.append(StyleInfo(name=path.stem, kind=header["kind"], prompt=meta.get("prompt", ""),
                               parameters=n_params, path=str(path),
                               preview=str(preview) if preview.exists() else None, metadata=meta))
    return infos
