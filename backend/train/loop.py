"""The training loop behind :func:`backend.train.run.train`: steps, evaluation, best weights, checkpoints,
and writing the finished style with its preview, history and curve."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from backend.train.audio_rows import AudioSampler, FeatureRows, spread_rows
from backend.train.checkpoint import Checkpoint, save_checkpoint
from backend.clip.models import ClipModel, load_clip
from backend.model.cppn import CPPN
from backend.train.cutouts import Views, augment, fixed_views, sample_views, view_coords
from backend.train.guidance import TextTargets, frames_per_chunk, render_views
from backend.progress import Progress, ProgressCallback, report
from backend.clip.prompts import WeightedPrompt, describe
from backend.styles.library import save_style
from backend.train.config import TrainConfig, TrainResult
from backend.train.record import write_curve, write_history

EVAL_ROWS = 2  # audio rows per evaluation view (a quieter and a louder moment)


def _auto_budget_bytes(device: torch.device) -> float:
    if device.type == "cuda":
        return 0.5 * torch.cuda.get_device_properties(device).total_memory
    return 4 * 2**30  # CPU / MPS: leave room for everything else on the machine


class Trainer:
    """One run's state: network, optimiser, random generator, history and best weights."""

    def __init__(self, config: TrainConfig, *, prompts: list[WeightedPrompt], negatives: list[WeightedPrompt],
                 rows: FeatureRows, device: torch.device, clip: ClipModel | None = None):
        self.config = config
        self.device = device
        self.clip = clip or load_clip(config.clip_model, config.pretrained, device=device)
        self.targets = TextTargets.encode(self.clip, prompts, negatives)
        self.model = CPPN(config.model).to(device)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)  # every random draw of the run
        self.sampler = AudioSampler(rows, time_range_s=config.time_range_s, remix=config.remix)
        views = fixed_views()
        n_views = len(views)
        eval_time, eval_audio = spread_rows(rows, EVAL_ROWS)
        self.eval_views = Views(centers=views.centers.repeat(EVAL_ROWS, 1), spans=views.spans.repeat(EVAL_ROWS))
        self.eval_time = eval_time.repeat_interleave(n_views)  # (EVAL_ROWS * n_views,)
        self.eval_audio = eval_audio.repeat_interleave(n_views, dim=0)
        budget = config.memory_budget_gb * 2**30 if config.memory_budget_gb else _auto_budget_bytes(device)
        self.budget_bytes = budget
        self.step = 0  # completed steps
        self.history: dict = {"steps": [], "evals": []}
        self.best: dict = {"step": None, "similarity": None, "score": None}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.elapsed_s = 0.0
        self.consistent = True  # False while a step is half done: no checkpoint may be taken then

    def _chunk(self, size: int, views: int) -> int | None:
        chunk = frames_per_chunk(size * size, hidden=self.config.model.hidden, depth=self.config.model.depth,
                                 budget_bytes=self.budget_bytes)
        return chunk if chunk < views else None

    def loss(self, resolution: int) -> tuple[torch.Tensor, dict]:
        """One batch: sample views and audio, render, augment, CLIP; returns (loss, numbers)."""
        c = self.config
        views = sample_views(c.cutouts, generator=self.generator, min_scale=c.min_scale, overscan=c.overscan)
        time_s, audio = self.sampler.sample(c.cutouts, generator=self.generator)
        coords = view_coords(views, resolution, device=self.device)  # (B, S*S, 3)
        images = render_views(self.model, coords, time_s, audio, chunk=self._chunk(resolution, c.cutouts))
        images = augment(images, generator=self.generator, noise=c.noise)  # (B, 3, S, S)
        positive, negative = self.targets.similarity(self.clip.encode_images(images))
        loss = (1 - positive).mean()
        numbers = {"similarity": positive.mean().item(), "negative_similarity": None}
        if negative is not None:
            loss = loss + c.negative_weight * negative.mean()
            numbers["negative_similarity"] = negative.mean().item()
        numbers["loss"] = loss.item()
        return loss, numbers

    def train_step(self) -> dict:
        resolution = self.config.resolution_at(self.step)
        lr = self.config.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, numbers = self.loss(resolution)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        entry = {"step": self.step, "resolution": resolution, "lr": lr, **numbers}
        self.history["steps"].append(entry)
        return entry

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Similarity on the fixed views at the finest resolution; keeps the best weights."""
        size = max(self.config.resolutions)
        coords = view_coords(self.eval_views, size, device=self.device)
        images = render_views(self.model, coords, self.eval_time, self.eval_audio)
        positive, negative = self.targets.similarity(self.clip.encode_images(images))
        similarity = positive.mean().item()
        negative_similarity = None if negative is None else negative.mean().item()
        score = similarity - self.config.negative_weight * (negative_similarity or 0.0)
        entry = {"step": self.step, "resolution": size, "similarity": similarity,
                 "negative_similarity": negative_similarity, "score": score}
        self.history["evals"].append(entry)
        if self.best["score"] is None or score > self.best["score"]:
            self.best = {"step": self.step, "similarity": similarity, "score": score}
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return entry

    def run(self, *, progress: ProgressCallback | None, checkpoint_file: Path, state: dict) -> None:
        c = self.config
        last = time.perf_counter()
        rate = None
        if self.step == 0 and not self.history["evals"]:
            self.evaluate()  # the starting point of the curve
        while self.step < c.steps:
            self.consistent = False
            entry = self.train_step()
            if self.step % c.eval_every == 0 or self.step == c.steps:
                self.evaluate()
            now = time.perf_counter()
            self.elapsed_s += now - last
            rate = 1 / max(now - last, 1e-9) if rate is None else 0.9 * rate + 0.1 / max(now - last, 1e-9)
            last = now
            if self.step % c.checkpoint_every == 0 and self.step < c.steps:
                self.save_checkpoint(checkpoint_file, state)
            self.consistent = True
            info = {"step": self.step, "loss": entry["loss"], "similarity": entry["similarity"],
                    "negative_similarity": entry["negative_similarity"], "steps_per_s": rate,
                    "resolution": entry["resolution"], "best_similarity": self.best["similarity"]}
            report(progress, Progress("train", self.step, c.steps,
                                      f"step {self.step} similarity {entry['similarity']:.3f}", info))
            last = time.perf_counter()  # time spent in the callback is not training time

    def save_checkpoint(self, path: Path, state: dict) -> Path:
        run_state = {**state, "step": self.step, "history": self.history, "best": self.best,
                     "elapsed_s": self.elapsed_s}
        return save_checkpoint(path, model=self.model, best=self.best_state or {}, optimizer=self.optimizer,
                               rng=self.generator.get_state(), state=run_state)

    def restore(self, checkpoint: Checkpoint) -> None:
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.generator.set_state(checkpoint.rng)
        s = checkpoint.state
        self.step, self.history, self.best, self.elapsed_s = s["step"], s["history"], s["best"], s["elapsed_s"]
        self.best_state = {k: v.to(self.device) for k, v in checkpoint.best.items()} or None


def write_outputs(trainer: Trainer, *, name: str, folder: Path, prompts: list[WeightedPrompt],
                  negatives: list[WeightedPrompt], prompt_text: str, features_source: str) -> TrainResult:
    """Save the best weights as the style, then its preview, history and training curve."""
    from backend.styles.preview import write_style_preview

    c = trainer.config
    final = trainer.history["evals"][-1]
    if trainer.best_state is not None:
        trainer.model.load_state_dict(trainer.best_state)
    trainer.model.eval()
    device = trainer.device
    metadata = {
        "prompt": prompt_text, "prompts": [p.to_dict() for p in prompts],
        "negative": c.negative, "negatives": [p.to_dict() for p in negatives],
        "negative_weight": c.negative_weight,
        "clip_model": trainer.clip.name, "pretrained": trainer.clip.pretrained,
        "clip_weights": trainer.clip.weights,  # the file really loaded (None: random weights)
        "steps": c.steps, "resolutions": list(c.resolutions), "seed": c.seed,
        "best_similarity": trainer.best["similarity"], "best_step": trainer.best["step"],
        "final_similarity": final["similarity"], "final_negative_similarity": final["negative_similarity"],
        "duration_s": round(trainer.elapsed_s, 3), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "features": features_source, "settings": c.to_dict(), "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "history_summary": {"evals": [[e["step"], round(e["similarity"], 5)] for e in trainer.history["evals"]]},
    }
    style_path = save_style(trainer.model, folder / f"{name}.safetensors", name=name, kind="trained",
                            metadata=metadata)
    preview_path = write_style_preview(trainer.model, folder / f"{name}.png")
    history = {"name": name, "prompt": prompt_text, "clip": trainer.clip.label, **trainer.history,
               "best": trainer.best}
    history_path = write_history(folder / f"{name}.history.json", history)
    title = f"{name}: {describe(prompts)}  [{trainer.clip.label}]"
    curve_path = write_curve(folder / f"{name}.curve.png", history, title=title)
    return TrainResult(style_path=style_path, preview_path=Path(preview_path), history_path=history_path,
                       curve_path=curve_path, best_similarity=float(trainer.best["similarity"]),
                       final_similarity=float(final["similarity"]), best_step=int(trainer.best["step"]),
                       steps=trainer.step, duration_s=trainer.elapsed_s, device=str(device), metadata=metadata)
