"""The bundled library: the committed files are exactly what the recipes make on any CPU, and they
look distinct."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from backend.model.cppn import CPPN, CPPNConfig
from backend.writers.image import read_image
from backend.styles.procedural import RECIPES, build_procedural
from backend.styles.library import DEFAULT_STYLE, default_styles_dir, list_styles, load_style
from tests.helpers.cpu import OTHER_CPU

LIBRARY = default_styles_dir()
ROOT = LIBRARY.parent


def test_at_least_six_procedural_styles_with_previews_under_5mb():
    infos = {i.name: i for i in list_styles(LIBRARY) if i.kind == "procedural"}
    assert len(infos) >= 6 and DEFAULT_STYLE in infos
    assert all(i.preview for i in infos.values())
    assert all(i.prompt for i in infos.values())  # a description a person can read
    total = sum(p.stat().st_size for p in LIBRARY.iterdir() if p.is_file())
    assert total < 5 * 1024 * 1024


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_committed_style_is_what_its_recipe_builds(recipe):
    """Bit for bit: the build is CPU-independent (float64 folds, exact seeded draws)."""
    style = load_style(recipe.name, styles_dir=LIBRARY)
    assert style.kind == "procedural" and style.metadata["recipe"]["seed"] == recipe.seed
    built = build_procedural(recipe).state_dict()
    for key, value in style.model.state_dict().items():
        assert torch.equal(value, built[key]), f"{recipe.name}.{key} differs: run python -m backend.styles.procedural"


BUILD_ALL = """
import sys
from safetensors.torch import save_file
from backend.styles.procedural import RECIPES, build_procedural
for recipe in RECIPES:
    save_file(build_procedural(recipe).state_dict(), f"{sys.argv[1]}/{recipe.name}.safetensors")
"""


def test_the_build_does_not_depend_on_the_cpus_vector_instructions(tmp_path):
    subprocess.run([sys.executable, "-c", BUILD_ALL, str(tmp_path)], env={**os.environ, **OTHER_CPU}, cwd=ROOT,
                   check=True, capture_output=True)
    for recipe in RECIPES:
        built = load_file(tmp_path / f"{recipe.name}.safetensors")
        for key, value in load_style(recipe.name, styles_dir=LIBRARY).model.state_dict().items():
            assert torch.equal(built[key], value), f"{recipe.name}.{key} depends on the CPU"


def test_the_palette_is_folded_into_the_output_layer():
    """The folded network's logits are the palette applied to the plain network's (float64 reference)."""
    recipe = next(r for r in RECIPES if r.name == "aurora")
    plain = CPPN(CPPNConfig(seed=recipe.seed, first_omega=recipe.first_omega, hidden_omega=recipe.hidden_omega))
    folded = build_procedural(recipe)
    h = torch.rand(50, plain.config.hidden, dtype=torch.float64) * 2 - 1
    matrix, offset = torch.tensor(recipe.colour_matrix, dtype=torch.float64), torch.tensor(recipe.colour_offset)
    expected = (h @ plain.out.weight.double().T) @ matrix.T + offset.double()
    got = h @ folded.out.weight.double().T + folded.out.bias.double()
    assert torch.allclose(got, expected, atol=1e-5)
    gains = torch.tensor(recipe.coord_gains)
    assert torch.allclose(folded.coord_weight, plain.coord_weight * gains, rtol=1e-6, atol=0)


def test_previews_are_distinct_pictures():
    images = {r.name: read_image(LIBRARY / f"{r.name}.png")[..., :3] for r in RECIPES}
    for name, image in images.items():
        assert image.std() > 0.08, f"{name} preview is nearly flat"
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(images[a] - images[b]).mean() > 0.1, f"{a} and {b} look alike"
