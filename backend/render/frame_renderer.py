"""Frames from a style: time and audio features in, display colour out, on the CPU or a CUDA GPU.

* CPU: FP32 through :class:`~backend.render.fast_cpu.FastCPUEvaluator`, one frame at a time.
* CUDA: FP16 weights and activations (the first layer, which sees the raw coordinates, stays
  FP32: half cannot tell neighbouring pixels apart at 4K). Frames go through in batches of a
  *fixed* size, the last batch padded by repeating its final frame, and pixels in fixed chunks,
  so every matrix product has the same shape whichever frames are rendered together: a frame's
  bytes never depend on its neighbours.

A frame is a pure function of (style, size, device, reactivity, seed, time, audio features).
The ``seed`` is a *variation* seed: a render has no randomness, so it shifts the style's slow
time drift to another point of its cycle (``seed_time_offset``); seed 0 shifts nothing.
"""

from __future__ import annotations

import copy
import math
from typing import Iterator

import numpy as np
import torch

from backend.model.coords import pixel_coords
from backend.model.cppn import CPPN, FrameTerms, Reactivity, apply_flash
from backend.model.device import RENDER_KINDS, resolve_device
from backend.errors import DeviceUnavailable, InvalidInput
from backend.render.fast_cpu import FastCPUEvaluator
from backend.audio.names import FEATURE_NAMES
from backend.styles.library import Style

MAX_SIDE = 16384  # OpenEXR and H.264 handle this; larger is almost surely a typo
GOLDEN = (math.sqrt(5) - 1) / 2  # spreads consecutive seeds evenly over the drift cycle
CUDA_BATCH = 8  # frames per GPU batch (fixed: see the module docstring)
CUDA_CHUNK_ROWS = 1 << 21  # frame-pixels per GPU step: bounds activation memory (~2.5 GiB peak at 128 wide)


def seed_time_offset(seed: int, periods: tuple[float, ...]) -> float:
    """Seconds added to every frame's time for variation ``seed`` (0 -> 0).

    Spread over the product of the style's drift periods (their joint cycle is at least that long
    for the usual non-commensurate periods), by the golden ratio so nearby seeds look unrelated.
    """
    if seed == 0:
        return 0.0
    cycle = float(np.prod(periods)) if periods else 1.0
    return ((int(seed) * GOLDEN) % 1.0) * cycle


def check_size(width: int, height: int) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_SIDE:
            raise InvalidInput(f"frame {name} must be a whole number from 1 to {MAX_SIDE}, got {value!r}")
    return int(width), int(height)


class HalfEvaluator:
    """The FP16 path (meant for CUDA; also runs on CPU torch, slowly, which is how it is tested).

    ``evaluate(terms)`` takes FrameTerms of exactly ``batch_size`` frames and returns display
    colour float32 (B, H*W, C) on the device.
    """

    def __init__(self, model: CPPN, *, width: int, height: int, device: str | torch.device,
                 batch_size: int = CUDA_BATCH, chunk_rows: int = CUDA_CHUNK_ROWS):
        self.device = torch.device(device)
        if self.device.type == "cuda":  # fp16 GEMMs accumulate in fp32 throughout, not in split-K halves
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        self.batch_size = batch_size
        self.n_pixels = width * height
        # Fixed pixel chunks: a multiple of 256 rows so GEMM tiles line up whatever the batch.
        self.chunk = max(256, (chunk_rows // batch_size) // 256 * 256)
        self.channels = model.config.out_channels
        self.coords = pixel_coords(width, height, device=self.device)  # (N, 3) float32
        self.coord_wt = model.coord_weight.detach().to(self.device, torch.float32).T.contiguous()  # (3, H)
        self.layers = [(layer.bias.detach().to(self.device, torch.float16),
                        layer.weight.detach().to(self.device, torch.float16).T.contiguous())
                       for layer in model.hidden_layers]
        self.out_b = model.out.bias.detach().to(self.device, torch.float16)
        self.out_wt = model.out.weight.detach().to(self.device, torch.float16).T.contiguous()  # (H, C)

    @torch.inference_mode()
    def evaluate(self, terms: FrameTerms) -> torch.Tensor:
        zoom = terms.zoom.to(self.device, torch.float32)[:, None, None]  # (B, 1, 1)
        bias = terms.bias.to(self.device, torch.float32)[:, None, :]  # (B, 1, H)
        flash = terms.flash.to(self.device, torch.float32)
        b = zoom.shape[0]
        if b != self.batch_size:
            raise ValueError(f"HalfEvaluator needs batches of {self.batch_size} frames, got {b}")
        out = torch.empty((b, self.n_pixels, self.channels), device=self.device, dtype=torch.float32)
        for start in range(0, self.n_pixels, self.chunk):
            stop = min(start + self.chunk, self.n_pixels)
            xyr = self.coords[start:stop]  # (n, 3)
            # three multiply-adds, not a matmul: stays true FP32 even where TF32 matmuls are enabled
            pre = (xyr[:, 0:1] * self.coord_wt[0] + xyr[:, 1:2] * self.coord_wt[1]
                   + xyr[:, 2:3] * self.coord_wt[2])  # (n, H) float32
            h = torch.sin(zoom * pre + bias).to(torch.float16).reshape(b * (stop - start), -1)  # (B*n, H)
            for layer_b, layer_wt in self.layers:
                h = torch.sin(torch.addmm(layer_b, h, layer_wt))
            logits = torch.addmm(self.out_b, h, self.out_wt).float()  # (B*n, C)
            colour = torch.sigmoid(logits).reshape(b, stop - start, self.channels)
            out[:, start:stop] = apply_flash(colour, flash)
        return out


class FrameRenderer:
    """Renders frames of one style at one size: ``render(times, audio) -> (B, H, W, C)`` display colour.

    style: a loaded :class:`Style` or a bare :class:`CPPN`.
    device: "auto", "cpu", "cuda" or "cuda:N"; precision follows (CPU FP32, CUDA FP16). The
        ``device`` attribute names the device used, as reports and manifests show it ("cuda:1").
    reactivity: how the music moves the picture (default :class:`Reactivity()`).
    seed: variation seed, see :func:`seed_time_offset`.
    threads: CPU worker threads (default: one per core).
    """

    def __init__(self, style: Style | CPPN, *, width: int, height: int, device: str = "auto",
                 reactivity: Reactivity | None = None, seed: int = 0, threads: int | None = None):
        self.width, self.height = check_size(width, height)
        where = resolve_device(device, RENDER_KINDS)
        self.device = str(where)  # "cpu", "cuda" or "cuda:N"
        self.precision = "fp16" if where.type == "cuda" else "fp32"
        model = style.model if isinstance(style, Style) else style
        # A private FP32 CPU copy: frame terms are cheap, and the caller's model stays where it was.
        self.model = copy.deepcopy(model).to("cpu").float().eval()
        self.channels = model.config.out_channels
        self.reactivity = reactivity or Reactivity()
        self.seed = int(seed)
        self.time_offset = seed_time_offset(self.seed, model.config.time_periods)
        if where.type == "cpu":
            self._cpu = FastCPUEvaluator(self.model, width=self.width, height=self.height, threads=threads)
            self._gpu = None
        else:
            self._cpu = None
            try:
                self._gpu = HalfEvaluator(self.model, width=self.width, height=self.height, device=where)
            except torch.cuda.OutOfMemoryError:
                raise _out_of_memory(self.width, self.height) from None

    @property
    def batch_size(self) -> int:
        """Frames computed together: feed at least this many per call for full GPU speed."""
        return self._gpu.batch_size if self._gpu is not None else 1

    def frame_terms(self, times_s: np.ndarray, audio: np.ndarray) -> FrameTerms:
        """Times (B,) seconds and canonical features (B, 24) -> FrameTerms, seed offset applied."""
        times = torch.as_tensor(np.asarray(times_s, np.float64) + self.time_offset, dtype=torch.float64)
        feats = torch.as_tensor(np.asarray(audio, np.float32))
        if feats.ndim != 2 or feats.shape[1] != len(FEATURE_NAMES) or feats.shape[0] != times.shape[0]:
            raise InvalidInput(f"audio features must have shape ({times.shape[0]}, {len(FEATURE_NAMES)}), "
                               f"got {tuple(feats.shape)}")
        with torch.no_grad():
            return self.model.frame_terms(times, feats, self.reactivity)

    def frames(self, times_s: np.ndarray, audio: np.ndarray) -> Iterator[np.ndarray]:
        """Yield each frame's display colour float32 (H, W, C) in [0, 1], in order, one array per frame."""
        times_s = np.atleast_1d(np.asarray(times_s, np.float64))
        audio = np.atleast_2d(np.asarray(audio, np.float32))
        n = len(times_s)
        step = self.batch_size
        for start in range(0, n, step):
            stop = min(start + step, n)
            terms = self.frame_terms(times_s[start:stop], audio[start:stop])
            if self._cpu is not None:
                for i in range(stop - start):
                    yield self._cpu.evaluate(terms, i).reshape(self.height, self.width, self.channels)
            else:
                yield from self._gpu_batch(terms, stop - start)

    def _gpu_batch(self, terms: FrameTerms, count: int) -> Iterator[np.ndarray]:
        pad = self._gpu.batch_size - count
        if pad:  # repeat the last frame so the batch shape, and so every frame's bytes, stay fixed
            terms = FrameTerms(*(torch.cat((t, t[-1:].expand(pad, *t.shape[1:]))) for t in
                                 (terms.zoom, terms.bias, terms.flash)))
        try:
            colour = self._gpu.evaluate(terms)[:count].cpu().numpy()  # (count, N, C)
        except torch.cuda.OutOfMemoryError:
            raise _out_of_memory(self.width, self.height) from None
        for frame in colour:
            yield frame.reshape(self.height, self.width, self.channels)

    def render(self, times_s: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """All requested frames at once, float32 (B, H, W, C); for a few frames (tests, previews)."""
        return np.stack(list(self.frames(times_s, audio)))

    def close(self) -> None:
        if self._cpu is not None:
            self._cpu.close()

    def __enter__(self) -> "FrameRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _out_of_memory(width: int, height: int) -> DeviceUnavailable:
    return DeviceUnavailable(f"the GPU ran out of memory rendering {width}x{height} frames",
                             fix="free GPU memory (other jobs), render smaller, or use --device cpu")
