"""The settings of a training run (:class:`TrainConfig`) and what a run returns (:class:`TrainResult`).

The network trained is any :class:`~backend.model.config.CPPNConfig` (``TrainConfig.model``). Outside
Python the settings are one flat JSON object (:meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`):
every TrainConfig field but ``model``, plus every CPPNConfig field (``hidden``, ``depth``,
``first_omega``, ``time_periods``, ..., ``seed``) under its own name; ``FLAT_NAMES`` lists them.
The command line, the service's train requests, checkpoints and style metadata all use these names.
Plain Python (no torch), so the command line reads its defaults from here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from backend.errors import InvalidInput
from backend.model.config import CPPNConfig
from backend.model.device import check_device_name

MAX_RESOLUTION = 2048


@dataclass
class TrainConfig:
    """Every setting of a training run; all of it is saved in the style's metadata."""

    steps: int = 800  # optimisation steps in all, split evenly over the resolutions
    resolutions: tuple[int, ...] = (256, 512)  # cutout size in pixels per stage, coarse to fine
    model: CPPNConfig = field(default_factory=CPPNConfig)  # the network; its seed also seeds the run's draws
    clip_model: str = "ViT-B-32"  # open_clip architecture, or local-dir:FOLDER
    pretrained: str | None = "laion2b_s34b_b79k"  # tag in the local cache, weights path, local-dir:, or random
    cutouts: int = 8  # views per step, batched through CLIP in one pass
    lr: float = 2e-3  # Adam's peak learning rate
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N, mps
    negative: str = ""  # things to steer away from, same syntax as the prompt
    negative_weight: float = 0.5  # loss weight of the similarity to the negative prompt
    features: str | None = None  # music the style must hold up under: .npz/.npy features or audio; None = demo track
    time_range_s: float = 600.0  # times sampled uniformly in [0, this), covering the slow time cycles
    remix: float = 0.25  # fraction of audio rows built feature-by-feature from different frames
    min_scale: float = 0.25  # smallest cutout, as a fraction of the frame height
    overscan: float = 1.15  # largest cutout and canvas margin, as a multiple of the frame
    noise: float = 0.02  # std of the Gaussian noise augmentation
    warmup_steps: int = 25  # linear learning-rate warm-up
    final_lr_fraction: float = 0.1  # cosine decay ends at lr * this
    eval_every: int = 50  # steps between evaluations on fixed views (best weights are chosen there)
    checkpoint_every: int = 100  # steps between checkpoints for resume
    memory_budget_gb: float | None = None  # activation memory before views are recomputed in chunks; None = auto

    def __post_init__(self):
        if isinstance(self.resolutions, (int, str)):
            self.resolutions = (self.resolutions,) if isinstance(self.resolutions, int) else \
                tuple(int(r) for r in str(self.resolutions).split(",") if r.strip())
        self.resolutions = tuple(int(r) for r in self.resolutions)
        if not isinstance(self.model, CPPNConfig):
            raise InvalidInput(f"model must be a CPPNConfig, got {type(self.model).__name__}")
        self.device = check_device_name(self.device)  # spelling now; whether it exists when the run starts
        _at_least("steps", self.steps, 1)
        _at_least("cutouts", self.cutouts, 1)
        _at_least("eval_every", self.eval_every, 1)
        _at_least("checkpoint_every", self.checkpoint_every, 1)
        _at_least("warmup_steps", self.warmup_steps, 0)
        if not self.resolutions or any(not 8 <= r <= MAX_RESOLUTION for r in self.resolutions):
            raise InvalidInput(f"resolutions must be 1+ sizes from 8 to {MAX_RESOLUTION} px, got {self.resolutions}")
        if self.steps < len(self.resolutions):
            raise InvalidInput(f"steps must be >= the number of resolutions ({len(self.resolutions)}), "
                               f"got {self.steps}")
        for key in ("lr", "time_range_s", "min_scale", "overscan"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise InvalidInput(f"{key} must be a finite number > 0, got {value}")
        for key in ("negative_weight", "noise", "remix", "final_lr_fraction"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInput(f"{key} must be a finite number >= 0, got {value}")
        if self.min_scale > self.overscan:
            raise InvalidInput(f"min_scale ({self.min_scale}) must not exceed overscan ({self.overscan})")

    @property
    def seed(self) -> int:
        """The run's one seed: the network's initial weights and every random draw of the run."""
        return self.model.seed

    def stage_steps(self) -> list[int]:
        """Steps per resolution: an even split, the remainder going to the first stages."""
        base, extra = divmod(self.steps, len(self.resolutions))
        return [base + (i < extra) for i in range(len(self.resolutions))]

    def resolution_at(self, step: int) -> int:
        """Cutout size for 0-based ``step``."""
        end = 0
        for resolution, count in zip(self.resolutions, self.stage_steps()):
            end += count
            if step < end:
                return resolution
        return self.resolutions[-1]

    def lr_at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        cosine = 0.5 * (1 + math.cos(math.pi * step / max(1, self.steps - 1)))
        return self.lr * warm * (self.final_lr_fraction + (1 - self.final_lr_fraction) * cosine)

    def to_dict(self) -> dict:
        """The flat settings (see the module docstring): JSON-ready, and what :meth:`from_dict` takes."""
        d = {k: v for k, v in asdict(self).items() if k != "model"}
        d["resolutions"] = list(self.resolutions)
        return {"steps": d.pop("steps"), "resolutions": d.pop("resolutions"), **self.model.to_dict(), **d}

    @classmethod
    def from_dict(cls, settings: dict) -> "TrainConfig":
        """TrainConfig from flat settings; a name that is neither a training nor a network setting is
        refused. Settings saved before the network had every CPPNConfig field (only ``hidden``,
        ``depth`` and ``seed``) read back as the network they trained: the others had their defaults."""
        settings = dict(settings)
        unknown = sorted(set(settings) - set(FLAT_NAMES))
        if unknown:
            raise InvalidInput(f"unknown training settings {unknown}; known: {', '.join(FLAT_NAMES)}")
        network = {k: settings.pop(k) for k in MODEL_NAMES if k in settings}
        return cls(model=CPPNConfig(**network), **settings)


def _at_least(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class TrainResult:
    style_path: Path  # the new style file
    preview_path: Path  # NAME.png
    history_path: Path  # NAME.history.json
    curve_path: Path  # NAME.curve.png
    best_similarity: float  # on the evaluation views, at best_step (the saved weights)
    final_similarity: float  # on the evaluation views after the last step
    best_step: int
    steps: int
    duration_s: float  # training time, summed over resumed sessions
    device: str
    metadata: dict  # exactly what the style file's header holds


MODEL_NAMES = tuple(f.name for f in fields(CPPNConfig))  # the flat settings that build the network
FLAT_NAMES = tuple(TrainConfig().to_dict())  # every name of the flat settings, in to_dict order
