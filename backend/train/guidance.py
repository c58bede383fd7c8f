"""CLIP guidance: what the prompts look like to CLIP, and rendering views differentiably for it.

Used by training (loss and evaluation) and scoring (the same weighted similarity), so a score
and a training curve measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from backend.clip.models import ClipModel
from backend.model.cppn import CPPN, FrameTerms, Reactivity
from backend.train.cutouts import to_images
from backend.clip.prompts import WeightedPrompt, normalised_weights


@dataclass
class TextTargets:
    """Prompt embeddings and weights for one CLIP model."""

    positive: torch.Tensor  # (P, D) unit-length text embeddings
    weights: torch.Tensor  # (P,) sum to 1
    negative: torch.Tensor | None  # (Q, D), None without a negative prompt
    negative_weights: torch.Tensor | None  # (Q,) sum to 1

    @classmethod
    def encode(cls, clip: ClipModel, prompts: list[WeightedPrompt],
               negatives: list[WeightedPrompt] | None = None) -> "TextTargets":
        def weights(items):
            return torch.tensor(normalised_weights(items), dtype=torch.float32, device=clip.device)

        negatives = negatives or []
        return cls(positive=clip.encode_text([p.text for p in prompts]), weights=weights(prompts),
                   negative=clip.encode_text([p.text for p in negatives]) if negatives else None,
                   negative_weights=weights(negatives) if negatives else None)

    def similarity(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weighted cosine similarity of image embeddings (B, D) to the prompts: (B,), and to the
        negative prompts: (B,) or None."""
        positive = (embeddings @ self.positive.T) @ self.weights  # (B,)
        if self.negative is None:
            return positive, None
        return positive, (embeddings @ self.negative.T) @ self.negative_weights


def frames_per_chunk(n_pixels: int, *, hidden: int, depth: int, budget_bytes: float) -> int:
    """How many views fit in ``budget_bytes`` of saved activations (about 3 per layer)."""
    per_view = 3 * depth * n_pixels * hidden * 4
    return max(1, int(budget_bytes // per_view))


def render_views(model: CPPN, coords: torch.Tensor, time_s: torch.Tensor, audio: torch.Tensor, *,
                 reactivity: Reactivity | None = None, chunk: int | None = None) -> torch.Tensor:
    """Render views (B, S*S, 3) at per-view time (B,) and audio (B, F): images (B, 3, S, S).

    Exactly the renderer's computation (``frame_terms`` + ``render_pixels``), differentiable.
    With gradients on and ``chunk`` < B, views are rendered ``chunk`` at a time under activation
    checkpointing: the same gradients for a fraction of the memory, at one extra forward pass.
    """
    b, n, _ = coords.shape
    size = int(round(n ** 0.5))
    terms = model.frame_terms(time_s, audio, reactivity)
    if chunk is None or chunk >= b or not torch.is_grad_enabled():
        return to_images(model.render_pixels(coords, terms), size)

    def piece(c, zoom, bias, flash):
        return model.render_pixels(c, FrameTerms(zoom=zoom, bias=bias, flash=flash))

    parts = [checkpoint(piece, coords[i:i + chunk], terms.zoom[i:i + chunk], terms.bias[i:i + chunk],
                        terms.flash[i:i + chunk], use_reentrant=False) for i in range(0, b, chunk)]
    return to_images(torch.cat(parts), size)
