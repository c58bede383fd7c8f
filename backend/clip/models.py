"""CLIP models for guidance and scoring, loaded from local files only — nothing ever downloads.

Where the weights come from (``pretrained``):

* a tag such as ``laion2b_s34b_b79k``: the file open_clip would download, found in the local
  Hugging Face cache (or ``~/.cache/clip`` for URL-hosted weights). We look it up ourselves
  before open_clip is asked, so a missing file fails at once with the file's name, the cache
  folder and the ``--pretrained PATH`` alternative — not after open_clip's ~46 s of Hub retries;
* a path to a weights file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``);
* ``local-dir:FOLDER`` holding ``open_clip_config.json`` and its weights (the architecture comes
  from the folder; also accepted as the model name). The weights file is the one open_clip's own
  folder loader would pick (``*.safetensors``, ``*.bin``, ``*.pth``), and it must exist: asking
  for pretrained weights never silently gives random ones;
* ``None`` / ``"random"``: random weights (benchmarks: same compute as pretrained).

Pickled ``.bin``/``.pt``/``.pth`` files are read with ``torch.load(weights_only=True)`` (open_clip's
default, passed explicitly here): tensors and plain containers only, never arbitrary objects.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import json
import logging
import os
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from backend.errors import DeviceUnavailable, InvalidInput, NotFound
from backend.model.device import resolve_device
from backend.user_paths import check_path_names, check_regular_file, kind_of

LOCAL_DIR = "local-dir:"
RANDOM = ("random", "none", "")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
FIX_PATH = "or pass --pretrained PATH to a local weights file (or local-dir:FOLDER)"
# open_clip's folder loader (factory._find_checkpoint_in_dir): these patterns, these names first
LOCAL_DIR_PATTERNS = ("*.safetensors", "*.bin", "*.pth")
LOCAL_DIR_PREFERRED = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                       "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                       "pytorch_model.bin", "pytorch_model.pth", "model.pth")
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")  # what a pretrained tag may set


@dataclass
class WeightsSource:
    """Where a model's architecture and weights come from, resolved without loading anything."""

    model_name: str  # what open_clip.create_model gets (a built-in name or local-dir:FOLDER)
    weights: str | None  # file to load; None = random weights
    label: str  # the tag, absolute path, local-dir:FOLDER or "random": what metadata records
    quick_gelu: bool = False  # the tag was trained with QuickGELU (OpenAI weights)
    preprocess: dict | None = None  # the tag's mean/std/... (open_clip merges these for a tag)


@dataclass
class ClipModel:
    """A frozen open_clip model with its tokenizer and the preprocessing it expects."""

    model: torch.nn.Module
    tokenizer: object
    image_size: tuple[int, int]  # (H, W) CLIP's input
    mean: torch.Tensor  # (3,) normalisation, on the model's device
    std: torch.Tensor  # (3,)
    name: str  # architecture, e.g. "ViT-B-32"
    pretrained: str  # tag, path, local-dir:FOLDER or "random"
    device: torch.device
    weights: str | None = None  # the file really loaded; None = random weights

    @property
    def label(self) -> str:
        return self.name if self.pretrained == self.name else f"{self.name}/{self.pretrained}"

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit-length text embeddings, shape (T, D)."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings of display-colour images (B, 3, H, W) in [0, 1], shape (B, D).

        Differentiable end to end: resize to CLIP's input (antialiased when shrinking) and
        normalise with the model's mean and std; no detach anywhere.
        """
        if tuple(images.shape[-2:]) != self.image_size:
            shrink = images.shape[-2] > self.image_size[0]
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False,
                                   antialias=shrink)
        x = (images - self.mean[:, None, None]) / self.std[:, None, None]
        return F.normalize(self.model.encode_image(x).float(), dim=-1)


def _open_clip_dir() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("open_clip is not installed", fix="pip install open_clip_torch")
    return Path(list(spec.submodule_search_locations)[0])


def _pretrained_registry():
    """open_clip's table of pretrained tags (``open_clip.pretrained``).

    Importing the ``open_clip`` package costs seconds (it imports torchvision); the table lives
    in a module that needs only its siblings ``constants`` and ``version``. Until open_clip is
    imported anyway, we load that one file under a private package name, so a bad tag or a
    missing file is reported in a fraction of a second.
    """
    if "open_clip" in sys.modules:
        return sys.modules["open_clip"].pretrained
    package = "_audio_cppn_open_clip_tags"
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = [str(_open_clip_dir())]
        sys.modules[package] = stub
    return importlib.import_module(f"{package}.pretrained")


def known_models() -> list[str]:
    """Built-in architectures, plus any registered in this process with ``add_model_config``."""
    names = {p.stem for p in (_open_clip_dir() / "model_configs").glob("*.json")}
    if "open_clip" in sys.modules:
        names.update(sys.modules["open_clip"].list_models())
    return sorted(names)


def hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_tag_file(cfg: dict) -> tuple[str | None, str, Path]:
    """(cached path or None, the file open_clip would fetch, the folder we looked in)."""
    registry = _pretrained_registry()
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)  # "org/repo/" means the default file name
        filename = filename or registry.HF_WEIGHTS_NAME
        candidates = list(registry._get_safe_alternatives(filename)) + [filename]
        for candidate in candidates:
            found = try_to_load_from_cache(repo, candidate)
            if isinstance(found, str) and os.path.isfile(found):
                return found, f"{repo}/{candidates[-1]}", hf_cache_dir()
        return None, f"{repo}/{candidates[-1]}", hf_cache_dir()
    url = cfg.get("url", "")
    folder = Path(os.path.expanduser("~/.cache/clip"))
    target = folder / os.path.basename(url)
    return (str(target) if target.is_file() else None), url, folder


def resolve_weights(name: str, pretrained: str | None) -> WeightsSource:
    """Decide what to load for ``name`` + ``pretrained`` without importing open_clip; fails fast."""
    name = (name or "").strip()
    tag = "" if pretrained is None else str(pretrained).strip()
    for text in (tag, name):
        if text.startswith(LOCAL_DIR):
            return _local_dir_source(text[len(LOCAL_DIR):])
    if not name:
        raise InvalidInput("CLIP model name is empty; expected e.g. ViT-B-32")
    clean = name.replace("/", "-")
    if clean not in known_models():
        close = difflib.get_close_matches(clean, known_models(), n=5, cutoff=0.6)
        raise InvalidInput(f"unknown CLIP model {name!r}" + (f"; similar: {', '.join(close)}" if close else "")
                           + "; see open_clip.list_models() for all")
    if tag.lower() in RANDOM:
        return WeightsSource(model_name=clean, weights=None, label="random")
    if tag.endswith(WEIGHT_SUFFIXES) or os.sep in tag or Path(tag).exists():
        path = _absolute(tag)  # absolute: a resumed run or a style's metadata may be used elsewhere
        check_regular_file(path, "CLIP weights file")
        check_weights_file(path)
        return WeightsSource(model_name=clean, weights=str(path), label=str(path))
    registry = _pretrained_registry()
    cfg = registry.get_pretrained_cfg(clean, tag)
    if not cfg:
        tags = registry.list_pretrained_tags_by_model(clean)
        raise InvalidInput(f"unknown pretrained tag {tag!r} for {clean}; known tags: {', '.join(tags) or 'none'}",
                           fix=f"use one of those, {FIX_PATH}")
    found, wanted, folder = _cached_tag_file(cfg)
    if found is None:
        if wanted.startswith(("http://", "https://")):
            how = f"download {wanted} into {folder} where there is internet"
        else:
            repo, filename = wanted.rsplit("/", 1)
            how = f"fetch it where there is internet ('hf download {repo} {filename}') and copy the cache folder here"
        raise NotFound(f"CLIP weights for {clean} / {tag} are not in the local cache: {wanted} "
                       f"is not under {folder} (audio-cppn never downloads)", fix=f"{how}, {FIX_PATH}")
    return WeightsSource(model_name=clean, weights=found, label=tag, quick_gelu=bool(cfg.get("quick_gelu")),
                         preprocess={k: cfg[k] for k in PREPROCESS_KEYS if cfg.get(k) is not None})


def _absolute(text: str) -> Path:
    return Path(os.path.abspath(os.path.expanduser(text)))


def check_weights_file(path: Path) -> None:
    """Cheap sanity check of a weights file (header only), so junk fails before a model is built."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InvalidInput(f"CLIP weights file is not readable: {path} ({exc.strerror})") from None
    if not head:
        raise InvalidInput(f"CLIP weights file is empty: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError, ValueError) as exc:
            raise InvalidInput(f"CLIP weights file {path} is not a valid safetensors file ({exc})") from None
    elif not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch zip archive or legacy pickle
        raise InvalidInput(f"CLIP weights file {path} is not a PyTorch or safetensors weights file",
                           fix="expected .safetensors, or a .pt/.bin/.pth saved by torch.save")


def find_local_weights(folder: Path) -> Path | None:
    """The weights file open_clip's ``local-dir:`` loader picks in ``folder``, or None.

    Mirrors ``open_clip.factory._find_checkpoint_in_dir``: ``*.safetensors``, ``*.bin``, ``*.pth``
    (not ``*.pt``), its preferred names first, else safetensors first, then by name.
    """
    found = sorted(p for pattern in LOCAL_DIR_PATTERNS for p in Path(folder).glob(pattern))
    found.sort(key=lambda p: p.suffix == ".safetensors", reverse=True)
    preferred = [p for p in found if p.name in LOCAL_DIR_PREFERRED]
    if preferred:
        return min(preferred, key=lambda p: LOCAL_DIR_PREFERRED.index(p.name))
    return found[0] if found else None


def _local_dir_source(folder_text: str) -> WeightsSource:
    folder = check_path_names(_absolute(folder_text), "CLIP folder")
    config = folder / "open_clip_config.json"
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"CLIP folder {folder} is {kind_of(folder.stat().st_mode)}, not a folder "
                           "(local-dir: needs a folder with open_clip_config.json and its weights)")
    if not folder.is_dir():
        raise NotFound(f"CLIP folder not found: {folder} (local-dir: needs a folder with open_clip_config.json "
                       "and its weights)")
    try:
        if "model_cfg" not in json.loads(config.read_text()):
            raise ValueError("no 'model_cfg' key")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{config} is not a usable open_clip config ({exc})") from None
    weights = find_local_weights(folder)
    if weights is None:
        others = sorted(p.name for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        hint = f"; found {', '.join(others)}, which open_clip does not look for: rename it to .bin" if others else ""
        raise NotFound(f"no CLIP weights in {folder}: open_clip looks for *.safetensors, *.bin or *.pth beside "
                       f"open_clip_config.json{hint}")
    check_weights_file(weights)
    return WeightsSource(model_name=f"{LOCAL_DIR}{folder}", weights=str(weights), label=f"{LOCAL_DIR}{folder}")


@contextlib.contextmanager
def _quiet_logging():
    """open_clip logs to the root logger; library code must not print."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def load_clip(name: str = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k", *,
              device: str | torch.device = "cpu") -> ClipModel:
    """Load a frozen FP32 open_clip model, its tokenizer and preprocessing from local files only."""
    source = resolve_weights(name, pretrained)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    from backend.clip.compat import import_open_clip

    open_clip = import_open_clip()
    try:
        with _quiet_logging():
            model = _create(open_clip, source, device)
            tokenizer = open_clip.get_tokenizer(source.model_name)
    except torch.OutOfMemoryError:
        raise DeviceUnavailable(f"not enough memory on {device} for CLIP {source.model_name}",
                                fix="use a smaller --clip-model or --device cpu") from None
    except Exception as exc:  # open_clip raises anything from AssertionError to AttributeError on a bad file
        raise _load_error(source, exc) from None
    model.eval().requires_grad_(False)
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", model.visual.image_size)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return ClipModel(model=model, tokenizer=tokenizer, image_size=size,
                     mean=torch.tensor(cfg["mean"], dtype=torch.float32, device=device),
                     std=torch.tensor(cfg["std"], dtype=torch.float32, device=device),
                     name=source.model_name, pretrained=source.label, device=device, weights=source.weights)


def _create(open_clip, source: WeightsSource, device: torch.device) -> torch.nn.Module:
    common = dict(precision="fp32", device=device, force_quick_gelu=source.quick_gelu,
                  force_preprocess_cfg=source.preprocess)
    if not source.model_name.startswith(LOCAL_DIR):
        # require_pretrained: a file that is asked for is loaded, or this fails; never random weights
        return open_clip.create_model(source.model_name, pretrained=source.weights, weights_only=True,
                                      require_pretrained=source.weights is not None, **common)
    # A folder: build from its config, then load exactly the file resolve_weights checked.
    model = open_clip.create_model(source.model_name, load_weights=False, pretrained_text=False, **common)
    open_clip.load_checkpoint(model, source.weights, strict=True, weights_only=True)
    return model


def _load_error(source: WeightsSource, exc: Exception) -> InvalidInput:
    text = " ".join(str(exc).split())[:300]
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if source.weights is None:
        return InvalidInput(f"cannot build CLIP model {source.model_name}: {detail}")
    if isinstance(exc, pickle.UnpicklingError):
        return InvalidInput(f"CLIP weights file {source.weights} holds pickled objects that are not plain "
                            "weights; refused to unpickle it (torch.load weights_only=True)",
                            fix="use a .safetensors file, or one saved with torch.save(model.state_dict())")
    return InvalidInput(f"CLIP weights file {source.weights} does not fit the model {source.model_name} "
                        f"({detail})", fix="check the file is complete and is for this architecture")


SECOND_OPINIONS = (  # checked in order for a second scoring model; the first one cached wins
    ("ViT-B-16", "laion2b_s34b_b88k"), ("ViT-L-14", "laion2b_s32b_b82k"), ("ViT-B-32", "openai"),
    ("ViT-B-16", "openai"), ("ViT-L-14", "openai"), ("ViT-B-32", "laion2b_s34b_b79k"),
)


def find_cached_model(*, exclude: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The first of :data:`SECOND_OPINIONS` whose weights are cached locally, other than ``exclude``."""
    for name, tag in SECOND_OPINIONS:
        if exclude and (name, tag) == tuple(exclude):
            continue
        try:
            resolve_weights(name, tag)
        except (NotFound, InvalidInput):
            continue
        return name, tag
    return None
