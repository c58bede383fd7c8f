"""Style previews: one standard frame per style, so the library can be browsed by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from backend.model.coords import pixel_coords
from backend.model.cppn import CPPN
from backend.audio.names import FEATURE_INDEX, FEATURE_NAMES
from backend.styles.library import Style

PREVIEW_SIZE = (384, 216)  # 16:9, the aspect most renders use
PREVIEW_TIME = 5.0  # seconds into the slow time drift


def typical_audio_frame() -> torch.Tensor:
    """A mid-song feature vector (moderate levels, between beats, no onset), shape (1, F)."""
    audio = torch.full((1, len(FEATURE_NAMES)), 0.35)
    audio[0, FEATURE_INDEX["onset"]] = 0.0
    audio[0, FEATURE_INDEX["beat_pulse"]] = 0.2
    return audio


def preview_frame(model: CPPN, *, width: int = PREVIEW_SIZE[0], height: int = PREVIEW_SIZE[1]) -> np.ndarray:
    """The preview's display colour, float32 (H, W, C) in [0, 1]."""
    coords = pixel_coords(width, height).to(model.first_bias)
    with torch.no_grad():
        colour = model(coords, torch.tensor([PREVIEW_TIME]), typical_audio_frame())[0]  # (N, C)
    return colour.reshape(height, width, -1).float().cpu().numpy()


def write_style_preview(style: Style | CPPN, path: Path) -> Path:
    """Write the standard 8-bit sRGB preview PNG of a style (or a bare model)."""
    from backend.writers.image import write_png

    model = style.model if isinstance(style, Style) else style
    return write_png(Path(path), preview_frame(model), depth=8)
