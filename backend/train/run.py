"""Train a style from a text prompt with CLIP guidance: prompt in, ``styles/NAME.safetensors`` out.

Per step, a batch of random canvas windows (:mod:`backend.train.cutouts`) is rendered through the
renderer's own differentiable path, each window at its own time and real-music audio row
(:mod:`backend.train.audio_rows`), lightly augmented, and scored by CLIP in one batched pass;
the loss is the weighted cosine distance to the prompts plus the weighted similarity to the
negative prompt. FP32 throughout, no detach between the network and CLIP. The cutout size
follows a pyramid (256 then 512 px by default); the learning rate warms up, then decays on a
cosine. Fixed evaluation views pick the best weights, which become the style.

Outputs in the library folder: ``NAME.safetensors`` (metadata: prompts, negative, CLIP model and
tag, steps, similarities, seed, every setting, duration, device), ``NAME.png`` (preview),
``NAME.history.json`` and ``NAME.curve.png``. A checkpoint in ``.checkpoints/`` every
``checkpoint_every`` steps (and on cancel) lets ``resume=True`` continue exactly; it is removed
when the run finishes.

Settings are recorded as resolved: the CLIP model and weights as :func:`resolve_weights` found
them (a ``local-dir:`` folder names both) and local paths made absolute, so a style's metadata
says what really trained it and ``--resume`` works from any folder.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

import torch

from backend.train.audio_rows import check_source, load_rows
from backend.train.checkpoint import checkpoint_path, load_checkpoint
from backend.clip.models import load_clip, resolve_weights
from backend.errors import Cancelled, Conflict, InvalidInput, NotFound
from backend.model.device import resolve_device
from backend.progress import Progress, ProgressCallback, report
from backend.clip.prompts import parse_prompts
from backend.styles.library import check_style_name, default_styles_dir
from backend.train.config import TrainConfig, TrainResult
from backend.train.loop import Trainer, write_outputs
from backend.user_paths import check_path_names, kind_of

RESUMABLE_CHANGES = ("device", "checkpoint_every", "memory_budget_gb")  # may differ when resuming


def resume_config(name: str, *, styles_dir: Path | None = None, **overrides) -> tuple[str, TrainConfig]:
    """The prompt and settings of NAME's interrupted run, with ``overrides`` applied."""
    path = checkpoint_path(Path(styles_dir or default_styles_dir()), check_style_name(name))
    if not path.is_file():
        raise NotFound(f"no interrupted run of {name!r} to resume: {path} does not exist",
                       fix="start a new run without --resume")
    state = load_checkpoint(path).state
    return state["prompt"], TrainConfig.from_dict({**state["settings"], **overrides})


def recorded_config(config: TrainConfig) -> TrainConfig:
    """``config`` as a run records it: CLIP model and weights as resolved, local paths absolute.
    Resolving the weights here makes missing weights fail in well under a second."""
    source = resolve_weights(config.clip_model, config.pretrained)
    features = None if config.features is None else os.path.abspath(os.path.expanduser(config.features))
    return replace(config, clip_model=source.model_name, pretrained=source.label, features=features)


def _check_resume(state: dict, prompt: str | None, config: TrainConfig | None) -> tuple[str, TrainConfig]:
    saved = recorded_config(TrainConfig.from_dict(state["settings"]))
    if prompt is not None and prompt.strip() and prompt.strip() != state["prompt"]:
        raise Conflict(f"the interrupted run was trained on {state['prompt']!r}, not {prompt.strip()!r}",
                       fix="resume with the same prompt, or start over with --overwrite")
    if config is None:
        return state["prompt"], saved
    config = recorded_config(config)
    before, after = saved.to_dict(), config.to_dict()
    changed = [f"{k} ({before[k]!r} -> {after[k]!r})" for k in before
               if k not in RESUMABLE_CHANGES and before[k] != after[k]]
    if changed:
        raise Conflict("cannot resume with different settings: " + ", ".join(changed),
                       fix="resume with the original settings, or start over with --overwrite")
    return state["prompt"], config


def check_targets(name: str, folder: Path, *, resume: bool, overwrite: bool) -> Path:
    """Refuse a run that would clobber a style or an interrupted run (or resume one that is not
    there), before anything slow; the service asks the same before queueing. Returns the checkpoint path."""
    check_style_name(name)
    folder = check_path_names(folder, "style library")
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"style library {folder} is {kind_of(folder.stat().st_mode)}, not a folder")
    ckpt_file = checkpoint_path(folder, name)
    style_file = folder / f"{name}.safetensors"
    if resume:
        if not ckpt_file.is_file():
            raise NotFound(f"no interrupted run of {name!r} to resume: {ckpt_file} does not exist",
                           fix="start a new run without --resume")
    elif not overwrite and ckpt_file.is_file():
        raise Conflict(f"an interrupted run of {name!r} exists ({ckpt_file})",
                       fix="pass --resume to continue it, or --overwrite to start over")
    elif not overwrite and style_file.exists():
        raise Conflict(f"style {name!r} already exists: {style_file}",
                       fix="choose another --name, or pass --overwrite to replace it")
    return ckpt_file


@contextlib.contextmanager
def _strict_fp32():
    """No TF32 shortcuts on CUDA: training is specified as FP32 throughout."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def train(prompt: str | None, *, name: str, config: TrainConfig | None = None, styles_dir: Path | None = None,
          progress: ProgressCallback | None = None, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train style ``name`` from ``prompt`` (``"ink in water:1, gold leaf:0.5"``) into the library.

    ``resume`` continues NAME's interrupted run from its checkpoint (``prompt`` and ``config`` may
    then be None to reuse the run's own); ``overwrite`` replaces an existing style or checkpoint.
    ``progress`` receives ``train`` events (info: step, loss, similarity, negative_similarity,
    steps_per_s, resolution, best_similarity); returning False cancels after saving a checkpoint.
    """
    folder = Path(styles_dir) if styles_dir else default_styles_dir()
    ckpt_file = check_targets(name, folder, resume=resume, overwrite=overwrite)
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(ckpt_file)
        prompt, config = _check_resume(checkpoint.state, prompt, config)
    else:
        config = config or TrainConfig()
    prompts = parse_prompts(prompt)
    negatives = parse_prompts(config.negative, what="negative prompt", allow_empty=True)
    device = resolve_device(config.device)
    if checkpoint is None:  # a resumed run's config came back from _check_resume already recorded
        config = recorded_config(config)
    rows = check_source(config.features)  # a bad features file fails before CLIP loads
    report(progress, Progress("load", 0, 1, f"loading CLIP {config.clip_model}"))
    clip = load_clip(config.clip_model, config.pretrained, device=device)  # before the (maybe slow) analysis
    report(progress, Progress("load", 1, 1, f"loaded {clip.label} on {device}"))
    rows = rows or load_rows(config.features, progress=progress)
    trainer = Trainer(config, prompts=prompts, negatives=negatives, rows=rows, device=device, clip=clip)
    state = {"prompt": prompt.strip(), "settings": config.to_dict(), "name": name}
    if checkpoint is not None:
        trainer.restore(checkpoint)
    with _strict_fp32():
        try:
            trainer.run(progress=progress, checkpoint_file=ckpt_file, state=state)
        except (Cancelled, KeyboardInterrupt):
            if trainer.consistent:
                trainer.save_checkpoint(ckpt_file, state)
            raise
    result = write_outputs(trainer, name=name, folder=folder, prompts=prompts, negatives=negatives,
                           prompt_text=state["prompt"], features_source=rows.source)
    ckpt_file.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        ckpt_file.parent.rmdir()  # only when no other run's checkpoint is left in it
    report(progress, Progress("save", 1, 1, f"saved {result.style_path}"))
    return result


__all__ = ["TrainConfig", "TrainResult", "check_targets", "recorded_config", "resume_config", "train"]
