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
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from backend.atomic import atomic_path
from backend.model.cppn import CPPN, CPPNConfig
from backend.errors import BackendError, InvalidInput, NotFound
from backend.user_paths import check_path_names, kind_of, open_regular
from backend.paths import DEFAULT_STYLE, STYLES_ENV, bundled_styles_dir, default_styles_dir  # noqa: F401 (library API)

FORMAT_VERSION = 1
METADATA_KEY = "audio_cppn"
SUFFIX = ".safetensors"
KINDS = ("procedural", "trained")
MAX_HEADER_BYTES = 4_000_000  # a style's header is ~2 KB; safetensors itself would allow 100 MB
MAX_JSON_DEPTH = 64  # our headers nest 4 levels; deeper JSON is refused before it is parsed
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
    candidate = check_path_names(text, "style")
    # A path only when it looks like one: a folder that happens to be called "aurora" is not a style.
    if text.endswith(SUFFIX) or os.sep in text or "/" in text:
        if not candidate.is_file():
            if candidate.exists():
                raise InvalidInput(f"style {candidate} is {kind_of(candidate.stat().st_mode)}, not a style file")
            raise NotFound(f"style file not found: {candidate}")
        return candidate
    folder = check_path_names(styles_dir or default_styles_dir(), "style library")
    path = folder / f"{text}{SUFFIX}"
    bundled = bundled_styles_dir()
    if (path.exists() or path.is_symlink()) and not path.is_file():  # a broken entry: say why, never "not found"
        what = kind_of(path.stat().st_mode) if path.exists() else "a link to a missing file"
        raise InvalidInput(f"style {text!r} in {folder} is unusable: {path.name} is {what}, not a style file")
    if not path.is_file() and bundled is not None and (bundled / f"{text}{SUFFIX}").is_file():
        return bundled / f"{text}{SUFFIX}"  # the shipped styles stay usable by name beside any library
    if not path.is_file():
        names = ", ".join(s.name for s in list_styles(folder)) if folder.is_dir() else ""
        raise NotFound(f"no style named {text!r} in {folder} (available: {names or 'none'})",
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


def _check_json(text: bytes, what: str) -> bytes:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH before parsing it (a parser would recurse)."""
    depth = deepest = 0
    for byte in re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', text):  # strings hold no structure
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
        elif byte in b"]}":
            depth -= 1
    return text


def _read_head(f, path: Path) -> tuple[bytes, dict, dict]:
    """The first 8 + n bytes of a safetensors file, its JSON header and our style header; bounded
    in size and nesting before anything is parsed."""
    first = f.read(8)
    n = int.from_bytes(first, "little")
    if len(first) < 8 or not 2 <= n <= MAX_HEADER_BYTES:
        raise ValueError("bad header length" if n <= MAX_HEADER_BYTES else
                         f"its header claims {n} bytes; style headers are at most {MAX_HEADER_BYTES}")
    text = f.read(n)
    if len(text) < n:
        raise ValueError("the file ends inside its header")
    outer = json.loads(_check_json(text, "the safetensors header"))
    if not isinstance(outer, dict) or not isinstance(outer.get("__metadata__"), dict):
        raise ValueError("no __metadata__ in the header")
    inner = outer["__metadata__"][METADATA_KEY]
    if not isinstance(inner, str):
        raise ValueError(f"{METADATA_KEY} metadata is not a JSON text")
    header = json.loads(_check_json(inner.encode("utf-8", "surrogatepass"), "the style header"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return first + text, outer, header


def _check_header(header: dict, path: Path) -> dict:
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
        raise InvalidInput(f"{path} style header has name {str(header['name'])[:40]!r} and kind "
                           f"{str(header['kind'])[:40]!r}; expected a text name and a kind of {', '.join(KINDS)}")
    metadata = header.setdefault("metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("prompt", ""), str):
        raise InvalidInput(f"{path} style metadata must be a JSON object with a text prompt")
    return header


def _open_style(path: Path):
    return open_regular(path, "style file")


def read_header(path: Path) -> dict:
    """The style header without loading weights (cheap, used for listing): reads only the header.

    Every field a caller relies on is checked here, so one odd file is one clear error, never a
    crash or a hang (a pipe or device is refused unopened, see :func:`open_regular`).
    """
    with _open_style(path) as f:
        try:
            _, _, header = _read_head(f, path)
        except (OSError, ValueError, KeyError, TypeError, RecursionError, UnicodeError) as exc:
            raise InvalidInput(f"{path} is not an Audio CPPN style file ({type(exc).__name__}: {exc})") from None
    return _check_header(header, path)


def load_style(name_or_path: str | os.PathLike, *, styles_dir: Path | None = None,
               device: str | torch.device = "cpu") -> Style:
    """Load a style by library name or file path, rebuilding its network from the header.

    The header is read and checked first (and the weights' shapes against the config it names),
    so a large file that is not a style is refused after reading a few bytes, never read whole.
    """
    path = style_path(name_or_path, styles_dir)
    with _open_style(path) as f:
        try:
            head, outer, header = _read_head(f, path)
        except (OSError, ValueError, KeyError, TypeError, RecursionError, UnicodeError) as exc:
            raise InvalidInput(f"{path} is not an Audio CPPN style file ({type(exc).__name__}: {exc})") from None
        header = _check_header(header, path)
        config = _config(header, path)
        with torch.device("meta"):  # shapes first: a header must not make us allocate what the file lacks
            expected = CPPN(config).state_dict()
        size = _check_tensor_table(outer, expected, path)
        actual = os.fstat(f.fileno()).st_size
        if actual != len(head) + size:
            raise InvalidInput(f"{path} is corrupt: it is {actual} bytes, its header describes {len(head) + size}")
        try:
            data = head + f.read(size)  # read once: the weights loaded are the bytes hashed
        except OSError as exc:
            raise InvalidInput(f"cannot read style file {path}: {exc.strerror or exc}") from None
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise InvalidInput(f"{path} is corrupt: {exc}") from None
    for key in expected:
        if not torch.isfinite(tensors[key]).all():
            raise InvalidInput(f"{path} is corrupt: weight {key} holds NaN or infinite values")
    model = CPPN(config)
    model.load_state_dict({k: tensors[k] for k in expected})
    model.eval().requires_grad_(False).to(device)
    return Style(name=header["name"], kind=header["kind"], model=model,
                 metadata=header["metadata"], path=path, sha256=hashlib.sha256(data).hexdigest())


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _check_tensor_table(outer: dict, expected: dict, path: Path) -> int:
    """Check the header's tensor entries against the network's shapes; returns the data's byte size."""
    missing = sorted(set(expected) - set(outer))
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise InvalidInput(f"{path} is missing {len(missing)} weights the config needs ({shown})")
    end = 0
    for key, entry in outer.items():
        if key == "__metadata__":
            continue
        try:
            shape, (start, stop) = [int(d) for d in entry["shape"]], entry["data_offsets"]
            itemsize = _DTYPE_BYTES[entry["dtype"]]
            if not 0 <= int(start) <= int(stop) or int(stop) - int(start) != math.prod(shape) * itemsize:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"{path} is corrupt: the header's entry for {str(key)[:40]} is not a tensor") from None
        if key in expected and tuple(shape) != tuple(expected[key].shape):
            raise InvalidInput(f"{path}: weight {key} has shape {tuple(shape)}, "
                               f"the config needs {tuple(expected[key].shape)}")
        end = max(end, int(stop))
    return end


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
    folder = check_path_names(Path(styles_dir) if styles_dir else default_styles_dir(), "style library")
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"style library {folder} is {kind_of(folder.stat().st_mode)}, not a folder")
    if not folder.is_dir():
        raise NotFound(f"style library folder not found: {folder}")
    infos = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            header = read_header(path)
            with torch.device("meta"):
                n_params = CPPN(_config(header, path)).n_parameters
        except BackendError as exc:  # one bad file is one line, never the end of the listing
            if problems is not None:
                problems.append(exc.message)
            continue
        preview = path.with_suffix(".png")
        meta = header["metadata"]
        infos.append(StyleInfo(name=path.stem, kind=header["kind"], prompt=meta.get("prompt", ""),
                               parameters=n_params, path=str(path),
                               preview=str(preview) if preview.exists() else None, metadata=meta))
    return infos
