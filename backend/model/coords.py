"""The network's spatial and temporal inputs, made by one function for training and rendering alike.

Pixel coordinates: the frame's height spans [-pi, pi] and x uses the same scale, so circles stay
round at any aspect ratio (16:9 spans x in [-16/9*pi, 16/9*pi]). y points up; rows run top to
bottom, matching how images are stored. ``r`` is the distance from the centre.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

HEIGHT_SPAN = 2 * math.pi  # the frame's height in coordinate units


def pixel_coords(width: int, height: int, *, center: tuple[float, float] = (0.0, 0.0),
                 span: float = HEIGHT_SPAN, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates ``(x, y, r)`` of a ``width`` x ``height`` view, shape [H*W, 3].

    ``center`` and ``span`` (the view's height in coordinate units) select a window of the
    canvas: the defaults are the whole frame; training uses other windows as cutouts.
    """
    step = span / height
    ys = center[1] + (height / 2 - 0.5 - torch.arange(height, device=device, dtype=torch.float64)) * step
    xs = center[0] + (torch.arange(width, device=device, dtype=torch.float64) - (width / 2 - 0.5)) * step
    y, x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    r = torch.sqrt(x * x + y * y)
    return torch.stack((x, y, r), dim=-1).reshape(height * width, 3).to(dtype)


def time_phases(time_s: torch.Tensor, periods: Sequence[float]) -> torch.Tensor:
    """Slow cyclic time inputs: sin and cos of ``2*pi*t/period`` per period, shape [B, 2*len(periods)]."""
    t = time_s.to(torch.float64)[:, None]  # (B, 1); float64 so hour-long songs keep their phase exact
    angles = 2 * math.pi * t / torch.tensor(periods, dtype=torch.float64, device=t.device)
    return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1).to(torch.float32)
