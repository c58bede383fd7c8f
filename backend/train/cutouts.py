"""What CLIP sees while a style trains: random square windows of the render canvas, lightly augmented.

The canvas is what renders show: height [-pi, pi], and x up to +-16/9*pi for 16:9 (a 9:16 or
1:1 render shows a narrower middle part of it). Each training step renders a batch of windows
through :func:`backend.model.coords.pixel_coords` — the renderer's own coordinate function — so a
window is exactly a piece of some real frame, never a resampled one:

* *frame views* (a quarter of the batch): a whole 1:1 frame, panned anywhere across the 16:9
  width, sometimes slightly overscanned — so every aspect ratio's full view looks right;
* *detail views*: windows of mixed sizes (log-uniform from ``min_scale`` of the frame height
  to ``overscan``), centred anywhere on the canvas plus a margin.

Augmentations are light on purpose (mirror, a little noise): CLIP must judge the picture the
network really makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from backend.model.coords import HEIGHT_SPAN, pixel_coords

WIDEST_ASPECT = 16 / 9  # the widest frame the canvas must cover


@dataclass
class Views:
    """A batch of square windows of the canvas."""

    centers: torch.Tensor  # (B, 2) window centres (x, y) in canvas units
    spans: torch.Tensor  # (B,) window heights (= widths) in canvas units

    def __len__(self) -> int:
        return int(self.spans.shape[0])


def sample_views(n: int, *, generator: torch.Generator, min_scale: float = 0.25,
                 overscan: float = 1.15, frame_fraction: float = 0.25) -> Views:
    """Draw ``n`` windows (see the module docstring); all random numbers come from ``generator``."""
    u = torch.rand((n, 4), generator=generator, dtype=torch.float64)  # one draw, fixed order
    half_w = WIDEST_ASPECT * math.pi * overscan  # canvas half-extent with margin
    half_h = math.pi * overscan
    n_frames = max(1, round(n * frame_fraction)) if n > 1 else 0
    is_frame = torch.arange(n) < n_frames
    scale = torch.exp(math.log(min_scale) + u[:, 0] * (math.log(overscan) - math.log(min_scale)))
    frame_scale = 1.0 + u[:, 0] * (overscan - 1.0)
    spans = HEIGHT_SPAN * torch.where(is_frame, frame_scale, scale)
    # Frame views pan horizontally across the 16:9 width; details roam the whole canvas.
    pan = (WIDEST_ASPECT - 1.0) * math.pi
    frame_x = (2 * u[:, 1] - 1) * pan
    reach_x = (half_w - spans / 2).clamp(min=0.0)
    reach_y = (half_h - spans / 2).clamp(min=0.0)
    detail_x = (2 * u[:, 1] - 1) * reach_x
    detail_y = (2 * u[:, 2] - 1) * reach_y
    frame_y = (2 * u[:, 2] - 1) * 0.05 * math.pi
    cx = torch.where(is_frame, frame_x, detail_x)
    cy = torch.where(is_frame, frame_y, detail_y)
    return Views(centers=torch.stack((cx, cy), dim=1), spans=spans)


def fixed_views() -> Views:
    """The evaluation views: the 1:1 frame at the centre, left and right ends of a 16:9 frame,
    and a half-height detail. Deterministic, so evaluations are comparable over a run."""
    pan = (WIDEST_ASPECT - 1.0) * math.pi
    centers = torch.tensor([[0.0, 0.0], [-pan, 0.0], [pan, 0.0], [0.9, -0.6]], dtype=torch.float64)
    spans = torch.tensor([HEIGHT_SPAN, HEIGHT_SPAN, HEIGHT_SPAN, HEIGHT_SPAN / 2], dtype=torch.float64)
    return Views(centers=centers, spans=spans)


def view_coords(views: Views, size: int, *, device=None) -> torch.Tensor:
    """Pixel coordinates of every window at ``size`` x ``size``, shape (B, size*size, 3)."""
    return torch.stack([
        pixel_coords(size, size, center=(float(c[0]), float(c[1])), span=float(s), device=device)
        for c, s in zip(views.centers, views.spans)
    ])


def to_images(colour: torch.Tensor, size: int) -> torch.Tensor:
    """Rendered pixels (B, size*size, C) to RGB images (B, 3, size, size); alpha is dropped."""
    b = colour.shape[0]
    return colour[..., :3].reshape(b, size, size, 3).permute(0, 3, 1, 2)


def augment(images: torch.Tensor, *, generator: torch.Generator, noise: float = 0.02) -> torch.Tensor:
    """Mirror about half the images and add a little Gaussian noise; images (B, 3, H, W) in [0, 1].

    The noise is drawn on the images' device from a seed taken from ``generator`` (no large
    host-to-device copy, still reproducible). No clamp: it would cut gradients at the extremes.
    """
    b = images.shape[0]
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    local = torch.Generator(device=images.device).manual_seed(seed)
    jitter = torch.randn(images.shape, generator=local, device=images.device, dtype=images.dtype) * noise
    mirrored = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return mirrored + jitter
