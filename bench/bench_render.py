"""Frame rendering speed: our CPU evaluator against the prototype's method, end to end with EXR writes,
and (on a CUDA machine) FP16 at 720p and 4K.

    python -m bench.bench_render [--frames 12] [--reference-frames 3] [--gpu-frames 240]

* CPU, 720p, FP32: frames/s of :class:`FastCPUEvaluator` and of a naive reference measured in the
  same run — the prototype's way: a full per-pixel input tensor (coordinates, time phases, audio
  features, pulse) through ``nn.Linear`` + ``torch.sin`` over the whole frame, torch threading as
  it comes. Reports the speed-up and the largest colour difference (in 8-bit levels).
  Targets: >= 3x, <= 1/255.
* CPU end to end: ``render()`` writing EXR (zip) frames against the compute-only rate of the same
  frames. Target: >= 85 %.
* CUDA (when available): 720p and 4K FP16, GPU-only, compute with the copy to the host, and end to
  end with EXR zip writes; realtime factor at 30 fps.

Writes ``bench/results/render_<device>.json`` and prints a Markdown table. Uses the default style
and the demo track's features.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".cache" / "bench"
FPS = 30


class NaiveReference(nn.Module):
    """The prototype's renderer: every pixel carries its own full input vector through nn.Linear layers."""

    def __init__(self, model):
        super().__init__()
        c = model.config
        hidden = c.hidden
        n_in = 3 + 2 * len(c.time_periods) + len(c.audio_inputs) + 1  # x, y, r, phases, audio, pulse
        self.first = nn.Linear(n_in, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in model.hidden_layers)
        self.out = nn.Linear(hidden, c.out_channels)
        with torch.no_grad():  # the same function as the style: copy its weights into this layout
            self.first.weight.copy_(torch.cat([model.coord_weight, model.time_weight,
                                               model.audio_projection.T, -model.coord_weight[:, 2:3]], dim=1))
            self.first.bias.copy_(model.first_bias)
            for mine, theirs in zip(self.hidden, model.hidden_layers):
                mine.load_state_dict(theirs.state_dict())
            self.out.load_state_dict(model.out.state_dict())
        self.model = model

    @torch.no_grad()
    def frame(self, coords, time_s: float, audio: np.ndarray, reactivity) -> torch.Tensor:
        from backend.model.coords import time_phases
        from backend.audio.names import FEATURE_INDEX

        m = self.model
        a = torch.as_tensor(audio)[None] * torch.from_numpy(reactivity.gain_vector())  # (1, F)
        zoom = 1.0 / (1.0 + reactivity.swell * a[0, FEATURE_INDEX["bass"]])
        pulse = reactivity.pulse * a[0, FEATURE_INDEX["beat_pulse"]]
        flash = (reactivity.flash * a[0, FEATURE_INDEX["onset"]]).clamp(0, 1)
        n = coords.shape[0]
        phases = time_phases(torch.tensor([time_s], dtype=torch.float64), m.config.time_periods)  # (1, T)
        inputs = torch.cat([coords * zoom,  # (N, 3 + T + A + 1): the full per-pixel input tensor
                            phases.expand(n, -1),
                            (reactivity.morph * a[:, m.audio_index]).expand(n, -1),
                            pulse.reshape(1, 1).expand(n, 1)], dim=1)
        h = torch.sin(self.first(inputs))
        for layer in self.hidden:
            h = torch.sin(layer(h))
        rgb = torch.sigmoid(self.out(h))
        return rgb + flash * (1 - rgb)  # (N, 3)


def _features(n_frames: int):
    from backend.audio.features import AudioConfig, analyze
    from backend.audio.demo_track import demo_track_path

    path = demo_track_path()
    features = analyze(path, config=AudioConfig(fps=FPS))
    start = min(240, features.n_frames - n_frames)  # the groove: every effect active
    return path, features, start


def bench_cpu(args) -> dict:
    from backend.model.coords import pixel_coords
    from backend.model.cppn import Reactivity
    from backend.render.frame_renderer import FrameRenderer
    from backend.render.job import RenderConfig, render
    from backend.styles.library import DEFAULT_STYLE, load_style

    width, height = 1280, 720
    style = load_style(DEFAULT_STYLE)
    audio_path, features, start = _features(args.frames)
    times, values = features.times[start:start + args.frames], features.values[start:start + args.frames]
    reactivity = Reactivity()

    naive = NaiveReference(style.model)
    coords = pixel_coords(width, height)
    reference, naive_s = [], []
    for i in range(args.reference_frames):
        t0 = time.perf_counter()
        reference.append(naive.frame(coords, float(times[i]), values[i], reactivity).numpy())
        naive_s.append(time.perf_counter() - t0)

    with FrameRenderer(style, width=width, height=height, device="cpu") as renderer:
        next(renderer.frames(times[:1], values[:1]))  # warm-up: numba cache, buffers
        t0 = time.perf_counter()
        ours = [f.reshape(-1, 3) for f in renderer.frames(times, values)]
        compute_s = time.perf_counter() - t0
    error = max(float(np.abs(ours[i] - reference[i]).max()) for i in range(args.reference_frames))

    out = CACHE / "render_e2e"
    shutil.rmtree(out, ignore_errors=True)
    config = RenderConfig(width=width, height=height, frames=(1 + start, start + args.frames), device="cpu",
                          exr_compression="zip")
    result = render(audio_path, style, out, config=config, features=features)
    shutil.rmtree(out, ignore_errors=True)
    naive_fps = len(naive_s) / sum(naive_s)
    ours_fps = args.frames / compute_s
    e2e_fps = result.frames_rendered / result.render_s
    return {"size": f"{width}x{height}", "frames": args.frames, "torch_threads": torch.get_num_threads(),
            "naive_s_per_frame": 1 / naive_fps, "ours_s_per_frame": 1 / ours_fps,
            "naive_fps": naive_fps, "ours_fps": ours_fps, "speedup": ours_fps / naive_fps,
            "max_error_255": error * 255, "e2e_exr_zip_fps": e2e_fps, "e2e_fraction": e2e_fps / ours_fps,
            "realtime_factor_compute": ours_fps / FPS, "realtime_factor_e2e": e2e_fps / FPS}


def bench_cuda(args) -> list[dict]:
    from backend.render.frame_renderer import FrameRenderer
    from backend.render.job import RenderConfig, render
    from backend.styles.library import DEFAULT_STYLE, load_style

    style = load_style(DEFAULT_STYLE)
    audio_path, features, _ = _features(1)
    n = min(args.gpu_frames, features.n_frames)
    times, values = features.times[:n], features.values[:n]
    rows = []
    for width, height in ((1280, 720), (3840, 2160)):
        with FrameRenderer(style, width=width, height=height, device="cuda") as renderer:
            gpu = renderer._gpu
            terms = renderer.frame_terms(times[:gpu.batch_size], values[:gpu.batch_size])
            gpu.evaluate(terms)  # warm-up
            torch.cuda.synchronize()
            batches = max(1, n // gpu.batch_size)
            t0 = time.perf_counter()
            for _ in range(batches):
                gpu.evaluate(terms)
            torch.cuda.synchronize()
            kernel_fps = batches * gpu.batch_size / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in renderer.frames(times, values):
                pass
            compute_fps = n / (time.perf_counter() - t0)
        out = CACHE / "render_e2e_cuda"
        shutil.rmtree(out, ignore_errors=True)
        result = render(audio_path, style, out, features=features,
                        config=RenderConfig(width=width, height=height, frames=(1, n), device="cuda"))
        shutil.rmtree(out, ignore_errors=True)
        e2e_fps = result.frames_rendered / result.render_s
        rows.append({"size": f"{width}x{height}", "frames": n, "precision": "fp16", "gpu_only_fps": kernel_fps,
                     "compute_fps": compute_fps, "e2e_exr_zip_fps": e2e_fps,
                     "realtime_factor_compute": compute_fps / FPS, "realtime_factor_e2e": e2e_fps / FPS})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12, help="frames timed for our renderer (default 12)")
    parser.add_argument("--reference-frames", type=int, default=3, help="frames of the naive reference (default 3)")
    parser.add_argument("--gpu-frames", type=int, default=240, help="frames per CUDA measurement (default 240)")
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA section")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {"area": "render", "device": device, "cpu": cpu_name(), "cores": os.cpu_count(),
              "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
              "torch": torch.__version__, "python": platform.python_version(),
              "created": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": ("python -m bench.bench_render " + " ".join(sys.argv[1:] if argv is None else argv)).strip(),
              "cpu_720p": None if args.skip_cpu else bench_cpu(args),
              "cuda": bench_cuda(args) if device == "cuda" else []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"render_{device}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"render speed on {report['cpu']} ({report['cores']} cores)" +
          (f", {report['gpu']}" if report["gpu"] else "") + "\n")
    if report["cpu_720p"]:
        r = report["cpu_720p"]
        print("| CPU 720p FP32 | s/frame | frames/s | vs naive | max error (1/255) | realtime |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| naive nn.Linear + torch.sin | {r['naive_s_per_frame']:.3f} | {r['naive_fps']:.2f} | 1.0x | - | "
              f"{r['naive_fps'] / FPS:.3f}x |")
        print(f"| ours, compute only | {r['ours_s_per_frame']:.3f} | {r['ours_fps']:.2f} | {r['speedup']:.2f}x | "
              f"{r['max_error_255']:.4f} | {r['realtime_factor_compute']:.3f}x |")
        print(f"| ours, end to end (EXR zip) | {1 / r['e2e_exr_zip_fps']:.3f} | {r['e2e_exr_zip_fps']:.2f} | "
              f"{r['e2e_exr_zip_fps'] / r['naive_fps']:.2f}x | - | {r['realtime_factor_e2e']:.3f}x |")
        print(f"\nend to end = {100 * r['e2e_fraction']:.0f} % of the compute-only rate (target >= 85 %); "
              f"speed-up target >= 3x, error target <= 1\n")
    if report["cuda"]:
        print("| CUDA FP16 | GPU only (frames/s) | compute + copy (frames/s) | end to end EXR zip | realtime e2e |")
        print("|---|---:|---:|---:|---:|")
        for r in report["cuda"]:
            print(f"| {r['size']} | {r['gpu_only_fps']:.1f} | {r['compute_fps']:.1f} | {r['e2e_exr_zip_fps']:.1f} | "
                  f"{r['realtime_factor_e2e']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
