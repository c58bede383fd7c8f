"""The CPPN: a small sine MLP from pixel coordinates, slow time and audio features to colour.

How audio drives the picture (see the README's "How audio moves the picture"):

* **morph** — the network's audio inputs enter the first layer through a *fixed* random
  projection (a buffer seeded by the config, never trained), so no amount of training can
  teach a style to ignore the music; training only teaches it to look good under it.
* **swell** — bass magnifies the coordinates (the picture swells on the bass).
* **pulse** — the beat pulse pushes the radial input outward (rings breathe on the beat).
* **flash** — onsets blend the colour towards white.

Per frame, time and audio fold into a handful of numbers (:class:`FrameTerms`): a zoom, a
first-layer bias and a flash amount. The per-pixel work is then plain ``sin(Wx + b)`` layers,
which is what the fast CPU and FP16 GPU paths compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from backend.model.config import CPPNConfig
from backend.model.coords import time_phases
from backend.audio.names import CHROMA, FEATURE_INDEX
from backend.model.reactivity import Reactivity  # noqa: F401  (part of this module's API)

COORD_INPUTS = 3  # x, y, r
# Scale of each feature's row in the fixed audio projection: slow, big movers (bass, loudness) morph
# the pattern most; features that twitch every hi-hat (treble, onset) or swap often (chroma) less,
# so the picture breathes with the music instead of flickering. Unlisted features get 1.
MORPH_EMPHASIS = {"sub": 1.0, "bass": 1.0, "low_mid": 0.6, "high_mid": 0.35, "treble": 0.25, "rms": 1.0,
                  "onset": 0.3, "beat_pulse": 0.6, "centroid": 0.4, **{name: 0.3 for name in CHROMA},
                  "chord_sin": 0.5, "chord_cos": 0.5, "chord_major": 0.4, "percussive": 0.15, "harmonic": 0.8}


@dataclass
class FrameTerms:
    """Everything time and audio contribute to one frame (batched over B frames)."""

    zoom: torch.Tensor  # (B,) multiplies the coordinates; < 1 magnifies
    bias: torch.Tensor  # (B, hidden) first-layer bias with time, audio and pulse folded in
    flash: torch.Tensor  # (B,) 0..1 blend of the colour towards white


class CPPN(nn.Module):
    def __init__(self, config: CPPNConfig):
        super().__init__()
        self.config = config
        c = config
        gen = torch.Generator().manual_seed(c.seed)

        def uniform(shape, bound):  # float64 draws are exact on every CPU; rounded once to float32
            return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).mul(bound).float()

        n_time = 2 * len(c.time_periods)
        self.coord_weight = nn.Parameter(uniform((c.hidden, COORD_INPUTS), c.first_omega))  # (hidden, 3)
        self.time_weight = nn.Parameter(uniform((c.hidden, n_time), c.time_omega))  # (hidden, T)
        self.first_bias = nn.Parameter(uniform((c.hidden,), math.pi))  # random phases
        bound = c.hidden_omega * math.sqrt(6 / c.hidden)
        self.hidden_layers = nn.ModuleList()
        for _ in range(c.depth - 1):
            layer = nn.Linear(c.hidden, c.hidden)
            with torch.no_grad():
                layer.weight.copy_(uniform((c.hidden, c.hidden), bound))
                layer.bias.copy_(uniform((c.hidden,), 1 / math.sqrt(c.hidden)))
            self.hidden_layers.append(layer)
        self.out = nn.Linear(c.hidden, c.out_channels)
        with torch.no_grad():
            self.out.weight.copy_(uniform((c.out_channels, c.hidden), math.sqrt(6 / c.hidden)))
            self.out.bias.zero_()
        emphasis = torch.tensor([[MORPH_EMPHASIS.get(n, 1.0)] for n in c.audio_inputs], dtype=torch.float64)
        projection = (seeded_normal((len(c.audio_inputs), c.hidden), gen) * c.audio_scale * emphasis).float()
        self.register_buffer("audio_projection", projection)  # (A, hidden), fixed on purpose
        self.register_buffer("audio_index", torch.tensor([FEATURE_INDEX[n] for n in c.audio_inputs],
                                                         dtype=torch.long), persistent=False)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def frame_terms(self, time_s: torch.Tensor, audio: torch.Tensor,
                    reactivity: Reactivity | None = None) -> FrameTerms:
        """Fold time (B,) seconds and audio (B, F) canonical features in [0, 1] into FrameTerms."""
        r = reactivity or Reactivity()
        a = audio.to(self.first_bias) * torch.from_numpy(r.gain_vector()).to(self.first_bias)  # (B, F)
        zoom = 1.0 / (1.0 + r.swell * a[:, FEATURE_INDEX["bass"]])
        pulse = r.pulse * a[:, FEATURE_INDEX["beat_pulse"]]
        flash = (r.flash * a[:, FEATURE_INDEX["onset"]]).clamp(0.0, 1.0)
        phases = time_phases(time_s, self.config.time_periods).to(self.first_bias)  # (B, T)
        bias = (self.first_bias + phases @ self.time_weight.T
                + r.morph * (a[:, self.audio_index] @ self.audio_projection)
                - pulse[:, None] * self.coord_weight[:, 2])  # r' = zoom*r - pulse
        return FrameTerms(zoom=zoom, bias=bias, flash=flash)

    def render_pixels(self, coords: torch.Tensor, terms: FrameTerms) -> torch.Tensor:
        """Display colour in [0, 1] for coords (N, 3) or (B, N, 3): returns (B, N, C).

        The reference computation, differentiable: training, the GPU path and tests use it.
        """
        pre = coords @ self.coord_weight.T  # (N, hidden) or (B, N, hidden)
        h = torch.sin(terms.zoom[:, None, None] * pre + terms.bias[:, None, :])  # (B, N, hidden)
        for layer in self.hidden_layers:
            h = torch.sin(layer(h))
        return apply_flash(torch.sigmoid(self.out(h)), terms.flash)

    def forward(self, coords: torch.Tensor, time_s: torch.Tensor, audio: torch.Tensor,
                reactivity: Reactivity | None = None) -> torch.Tensor:
        return self.render_pixels(coords, self.frame_terms(time_s, audio, reactivity))


def seeded_normal(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Standard normal draws (float64) from ``gen``, the same on every CPU.

    ``torch.randn`` in float32 takes a vectorised path whose rounding depends on the instruction
    set (a seed gave different bytes with and without AVX2). This is the same Box-Muller transform
    over the same exact float32 uniform draws, pairing values as that path does, so existing seeds
    keep their projection to within float32 rounding; the arithmetic is float64, rounded once by
    the caller. (float64 log/cos/sin may differ by an ulp between kernels; rounded to float32, that
    changes a value only when it sits within that ulp of a float32 boundary.)
    """
    n = math.prod(shape)
    whole = n - n % 16
    values = _box_muller(torch.rand(n, generator=gen).double()[:whole])
    if n % 16:  # a ragged end: the last 16 values are drawn afresh
        values = torch.cat((values[:max(n - 16, 0)], _box_muller(torch.rand(16, generator=gen).double())))
    return values[:n].reshape(shape)


def _box_muller(uniform: torch.Tensor) -> torch.Tensor:
    """Blocks of 16 uniforms in [0, 1): the first 8 give radii, the last 8 angles (cos, then sin)."""
    blocks = uniform.reshape(-1, 16)
    radius = torch.sqrt(-2.0 * torch.log(1.0 - blocks[:, :8]))
    theta = 2.0 * math.pi * blocks[:, 8:]
    return torch.cat((radius * torch.cos(theta), radius * torch.sin(theta)), dim=1).reshape(-1)


def apply_flash(colour: torch.Tensor, flash: torch.Tensor) -> torch.Tensor:
    """Blend RGB (not alpha) towards white by ``flash`` (B,); colour is (B, N, C)."""
    f = flash[:, None, None]
    rgb = colour[..., :3] + f * (1.0 - colour[..., :3])
    return torch.cat((rgb, colour[..., 3:]), dim=-1) if colour.shape[-1] > 3 else rgb
