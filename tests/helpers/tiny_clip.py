"""A tiny open_clip model with random weights, built in the test: nothing downloads.

Embed 32; vision width 64, 2 layers, patch 16 at 64x64; text width 64, 2 layers (~3.4 M
parameters, a forward+backward of 8 images in milliseconds). Written as a ``local-dir:`` folder
(``open_clip_config.json`` + ``open_clip_model.safetensors``), exactly what a user would point
``--pretrained local-dir:FOLDER`` at.
"""

import json
from pathlib import Path

import numpy as np
import torch

from backend.audio.names import FEATURE_INDEX, FEATURE_NAMES

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    """Write the tiny model with weights drawn from ``seed``; returns the folder."""
    from safetensors.torch import save_file

    from backend.clip.compat import import_open_clip

    open_clip = import_open_clip()
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def synthetic_features(n: int = 240, fps: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Music-like feature rows (n, F): a 120 BPM beat, onsets on beats, slow band swells."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    values = np.clip(0.4 + 0.25 * np.sin(2 * np.pi * t[:, None] / (3 + np.arange(len(FEATURE_NAMES))))
                     + 0.05 * rng.standard_normal((n, len(FEATURE_NAMES))), 0, 1)
    phase = (t * 2.0) % 1.0
    values[:, FEATURE_INDEX["beat_pulse"]] = np.exp(-6 * phase)
    values[:, FEATURE_INDEX["onset"]] = (phase < 1 / 15).astype(float)
    return values.astype(np.float32), t


def write_features(path: Path, **kwargs) -> Path:
    values, times = synthetic_features(**kwargs)
    np.savez(path, values=values, times=times)
    return path
