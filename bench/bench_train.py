"""Training speed: steps/s at 256² and 512² cutouts with ViT-B-32, and the full default run on CUDA.

ViT-B-32 is built with random weights (the same compute as pretrained ones; nothing downloads).
Audio rows are synthetic music-like features: they change what is drawn, not the cost.

    python -m bench.bench_train                 # CPU or CUDA, whichever 'auto' picks
    python -m bench.bench_train --device cuda --full

Writes ``bench/results/train_<device>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from backend.train.audio_rows import FeatureRows
from backend.clip.models import load_clip
from backend.model.device import resolve_device
from backend.audio.names import FEATURE_NAMES
from backend.clip.prompts import parse_prompts
from backend.train.run import TrainConfig, train
from backend.train.loop import Trainer
from bench.common import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "ink in water:1, gold leaf:0.5"


def synthetic_rows(n: int = 900, fps: float = 30.0) -> FeatureRows:
    rng = np.random.default_rng(0)
    t = np.arange(n) / fps
    values = 0.5 + 0.3 * np.sin(t[:, None] * (1 + np.arange(len(FEATURE_NAMES))) / 3)
    values += 0.1 * rng.standard_normal(values.shape)
    return FeatureRows(values=np.clip(values, 0, 1).astype(np.float32), times=t, source="synthetic")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_per_second(clip, rows: FeatureRows, resolution: int, *, steps: int, device: torch.device) -> dict:
    """Time ``steps`` training steps at one cutout size, after one warm-up step."""
    config = TrainConfig(resolutions=(resolution,), steps=max(steps + 1, 2), pretrained="random",
                         device=str(device))
    trainer = Trainer(config, prompts=parse_prompts(PROMPT), negatives=[], rows=rows, device=device, clip=clip)
    trainer.train_step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    chunk = trainer._chunk(resolution, config.cutouts)
    return {"resolution": resolution, "cutouts": config.cutouts, "steps": steps, "seconds_per_step": seconds,
            "steps_per_s": 1 / seconds, "views_per_checkpointed_chunk": chunk}


def full_run(device: torch.device, rows: FeatureRows) -> dict:
    """The default 800-step run end to end (CLIP load, evaluations, files), random ViT-B-32."""
    with tempfile.TemporaryDirectory() as folder:
        features = Path(folder) / "music.npz"
        np.savez(features, values=rows.values, times=rows.times)
        config = TrainConfig(pretrained="random", device=str(device), features=str(features))
        start = time.perf_counter()
        result = train(PROMPT, name="bench", config=config, styles_dir=Path(folder) / "styles")
        total = time.perf_counter() - start
    return {"steps": result.steps, "resolutions": list(config.resolutions), "seconds_total": total,
            "seconds_training": result.duration_s, "mean_steps_per_s": result.steps / result.duration_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per resolution (default 3 CPU, 20 CUDA)")
    parser.add_argument("--resolutions", default="256,512", help="cutout sizes to time (default 256,512)")
    parser.add_argument("--full", action="store_true", help="also time the default 800-step run (default on CUDA)")
    parser.add_argument("--no-full", action="store_true", help="skip the full run even on CUDA")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    steps = args.steps or (20 if device.type == "cuda" else 3)
    rows = synthetic_rows()
    clip = load_clip("ViT-B-32", "random", device=device)
    timings = [steps_per_second(clip, rows, int(r), steps=steps, device=device) for r in args.resolutions.split(",")]
    run = full_run(device, rows) if (args.full or device.type == "cuda") and not args.no_full else None
    report = {
        "benchmark": "train", "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "clip": "ViT-B-32 (random weights)",
        "model": {"hidden": 128, "depth": 4}, "timings": timings, "full_run": run,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.bench_train " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_{device.type}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"### Training speed, {report['device_name']} ({report['clip']}, 8 cutouts, CPPN 128x4)\n")
    print("| cutout | s/step | steps/s | views per checkpointed chunk |")
    print("|---|---|---|---|")
    for t in timings:
        print(f"| {t['resolution']}² | {t['seconds_per_step']:.3f} | {t['steps_per_s']:.2f} | "
              f"{t['views_per_checkpointed_chunk'] or 'all (no recompute)'} |")
    if run:
        print(f"\nDefault {run['steps']}-step run ({'→'.join(map(str, run['resolutions']))}): "
              f"{run['seconds_total']:.1f} s end to end, {run['seconds_training']:.1f} s training.")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
