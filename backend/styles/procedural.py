"""The bundled procedural styles: untrained CPPNs made good-looking by chosen seeds and transforms.

Each :class:`Recipe` picks a seed and initialisation scales, emphasises some coordinates (radial
rings, horizontal ribbons, ...) and folds a palette into the output layer: a 3x3 colour matrix and
offset applied to the output logits (``W' = M W``, ``b' = M b + c``), so a palette costs nothing at
render time and the architecture stays the standard one. They are honestly marked ``procedural``.

Regenerate the library files with ``python -m backend.styles.procedural [--out styles]``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from backend.model.cppn import CPPN, CPPNConfig
from backend.styles.library import default_styles_dir, save_style

CREATED = "2026-11-24"  # fixed so regenerating gives byte-identical files


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str  # shown as the style's prompt-like summary
    seed: int
    first_omega: float  # spatial frequency of the first layer
    hidden_omega: float  # detail: hidden-layer weight scale relative to SIREN
    coord_gains: tuple[float, float, float]  # emphasis of x, y, r (0.15/0.15/2 = rings, 0.35/1.4/0 = ribbons)
    colour_matrix: tuple[tuple[float, float, float], ...]  # 3x3 on the output logits (the palette)
    colour_offset: tuple[float, float, float]  # added to the logits: background and tint


RECIPES: tuple[Recipe, ...] = (
    Recipe("aurora", "green and violet curtains of light drifting over a night sky", 13, 1.0, 1.1,
           (0.35, 1.4, 0.0), ((0.3, 1.4, 0.0), (1.6, 0.0, 0.0), (1.0, 0.6, 0.0)), (-2.5, -1.0, -0.6)),
    Recipe("ember", "glowing embers and flame on black", 12, 1.5, 1.2,
           (1.0, 1.0, 0.5), ((1.6, 1.6, 1.6), (1.1, 1.1, 1.1), (0.7, 0.7, 0.7)), (0.3, -1.2, -3.0)),
    Recipe("abyss", "bioluminescent cyan and magenta creatures in the deep sea", 12, 1.8, 1.0,
           (1.0, 1.0, 1.0), ((2.2, 0.0, 0.8), (0.0, 2.0, 0.4), (0.4, 1.2, 1.6)), (-3.0, -2.4, -1.2)),
    Recipe("mandala", "concentric gold and violet rings", 13, 1.5, 1.4,
           (0.15, 0.15, 2.0), ((1.4, 0.6, 0.0), (1.2, -0.2, 0.0), (0.2, 1.2, 0.0)), (-0.3, -0.8, -0.8)),
    Recipe("ink", "black ink clouds blooming in water on white paper", 12, 1.2, 1.4,
           (1.0, 1.0, 0.6), ((-0.9, -0.9, -0.9),) * 3, (2.0, 1.9, 1.7)),
    Recipe("prism", "saturated rainbow colour fields", 14, 1.0, 1.0,
           (1.0, 1.0, 1.0), ((2.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 2.0)), (0.0, 0.0, 0.0)),
    Recipe("lagoon", "teal water and orange sand, swirling", 12, 2.2, 0.9,
           (1.0, 0.6, 0.8), ((1.5, 0.0, 0.0), (0.6, 0.9, 0.0), (0.0, 1.5, 0.0)), (-0.6, -0.2, -0.3)),
)


def build_procedural(recipe: Recipe) -> CPPN:
    """The recipe's network: seeded init, coordinate emphasis, palette folded into the output layer.

    The same on every CPU: the seeded draws are exact, and the transforms run in float64 as plain
    multiplies and adds in a fixed order (no BLAS kernel, whose float32 sums round differently from
    one instruction set to the next), rounded once to float32. So the committed files are what any
    machine builds, bit for bit.
    """
    model = CPPN(CPPNConfig(seed=recipe.seed, first_omega=recipe.first_omega,
                            hidden_omega=recipe.hidden_omega))
    coord_weight, weight, bias = (t.detach().numpy().astype(np.float64)
                                  for t in (model.coord_weight, model.out.weight, model.out.bias))
    with torch.no_grad():
        model.coord_weight.copy_(_as_float32(coord_weight * np.array(recipe.coord_gains)))
        model.out.weight.copy_(_as_float32(_matrix_times(recipe.colour_matrix, weight)))
        model.out.bias.copy_(_as_float32(_matrix_times(recipe.colour_matrix, bias) + np.array(recipe.colour_offset)))
    return model.eval().requires_grad_(False)


def _matrix_times(matrix: tuple[tuple[float, ...], ...], rows: np.ndarray) -> np.ndarray:
    """``matrix @ rows`` in float64, summed term by term left to right: no BLAS, no fused multiply-add."""
    result = []
    for coefficients in matrix:
        total = np.zeros(rows.shape[1:], np.float64)
        for coefficient, row in zip(coefficients, rows):
            total = np.add(total, np.multiply(coefficient, row))
        result.append(total)
    return np.stack(result)


def _as_float32(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.float32))


def write_bundled_styles(folder: Path) -> list[Path]:
    """Write every recipe's ``.safetensors`` and preview ``.png`` into ``folder``."""
    from backend.styles.preview import write_style_preview  # rendering sits downstream of styles

    paths = []
    for recipe in RECIPES:
        model = build_procedural(recipe)
        path = save_style(model, folder / f"{recipe.name}.safetensors", name=recipe.name, kind="procedural",
                          metadata={"prompt": recipe.description, "recipe": asdict(recipe),
                                    "created": CREATED})
        write_style_preview(model, path.with_suffix(".png"))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the bundled procedural styles and previews.")
    parser.add_argument("--out", type=Path, default=default_styles_dir(), help="library folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in write_bundled_styles(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
