"""How much a style looks like a prompt: mean CLIP similarity over frames across the music.

Frames are spread evenly over the track (the demo track by default), each rendered at its own
time and audio row with the default reactivity, through the renderer's ``render_pixels``.
CLIP sees the *centre crop* of each frame — CLIP's standard preprocessing of a 16:9 frame
(shortest side to the input size, centre square), which is exactly the frame's middle
height-by-height square. It is rendered at ``supersample`` times CLIP's input size and
downsampled with antialiasing, as a full-size frame would be.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from backend.train.audio_rows import FeatureRows, load_rows, spread_rows
from backend.clip.models import ClipModel
from backend.model.coords import pixel_coords
from backend.model.cppn import CPPN, Reactivity
from backend.errors import InvalidInput
from backend.train.guidance import TextTargets, render_views
from backend.progress import Progress, ProgressCallback, report
from backend.clip.prompts import WeightedPrompt, parse_prompts
from backend.styles.library import Style

BATCH = 8  # frames per CLIP pass


@dataclass
class ScoreResult:
    similarity: float  # mean over frames of the weighted cosine similarity to the prompts
    per_frame: list[float]  # one similarity per frame
    times: list[float]  # each frame's time in seconds
    clip: str  # the CLIP model and weights that judged ("ViT-B-32/laion2b_s34b_b79k")
    prompts: list[dict]  # [{"text", "weight"}]
    audio: str  # where the audio rows came from
    negative_similarity: float | None = None  # the same for the negative prompt, when given

    def to_dict(self) -> dict:
        return asdict(self)


def score_style(style: Style | CPPN, prompts: str | list[WeightedPrompt], *, clip: ClipModel,
                audio: FeatureRows | str | None = None, negative: str | list[WeightedPrompt] | None = None,
                n_frames: int = 16, supersample: int = 2, reactivity: Reactivity | None = None,
                progress: ProgressCallback | None = None) -> ScoreResult:
    """Mean CLIP similarity of ``n_frames`` frames spread over ``audio`` to ``prompts``.

    ``audio`` is feature rows, a features/audio file path, or None for the demo track.
    """
    if n_frames < 1:
        raise InvalidInput(f"n_frames must be >= 1, got {n_frames}")
    if supersample < 1:
        raise InvalidInput(f"supersample must be >= 1, got {supersample}")
    prompts = parse_prompts(prompts) if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise InvalidInput("prompt is empty; expected the text to score against")
    negatives = parse_prompts(negative, what="negative prompt", allow_empty=True) \
        if isinstance(negative, (str, type(None))) else list(negative)
    rows = audio if isinstance(audio, FeatureRows) else load_rows(audio, progress=progress)
    model = style.model if isinstance(style, Style) else style
    model = model.to(clip.device).eval()
    targets = TextTargets.encode(clip, prompts, negatives)
    times, values = spread_rows(rows, n_frames)
    height = clip.image_size[0] * supersample
    coords = pixel_coords(height, height, device=clip.device)  # the frame's centre square
    per_frame, per_negative = [], []
    with torch.no_grad():
        for start in range(0, n_frames, BATCH):
            t, a = times[start:start + BATCH], values[start:start + BATCH]
            batch = coords.expand(len(t), -1, -1)  # (b, N, 3)
            images = render_views(model, batch, t, a, reactivity=reactivity or Reactivity())
            positive, neg = targets.similarity(clip.encode_images(images))
            per_frame += positive.tolist()
            per_negative += [] if neg is None else neg.tolist()
            report(progress, Progress("score", min(start + BATCH, n_frames), n_frames, clip.label))
    return ScoreResult(similarity=float(sum(per_frame) / len(per_frame)), per_frame=per_frame,
                       times=times.tolist(), clip=clip.label, prompts=[p.to_dict() for p in prompts],
                       audio=rows.source,
                       negative_similarity=float(sum(per_negative) / len(per_negative)) if per_negative else None)
