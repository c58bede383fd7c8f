"""The bundled library: the committed files are exactly what the recipes make, and they look distinct."""

import numpy as np
import pytest
import torch

from backend.writers.image import read_image
from backend.styles.procedural import RECIPES, build_procedural
from backend.styles.library import DEFAULT_STYLE, default_styles_dir, list_styles, load_style

LIBRARY = default_styles_dir()


def test_at_least_six_procedural_styles_with_previews_under_5mb():
    infos = {i.name: i for i in list_styles(LIBRARY) if i.kind == "procedural"}
    assert len(infos) >= 6 and DEFAULT_STYLE in infos
    assert all(i.preview for i in infos.values())
    assert all(i.prompt for i in infos.values())  # a description a person can read
    total = sum(p.stat().st_size for p in LIBRARY.iterdir() if p.is_file())
    assert total < 5 * 1024 * 1024


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_committed_style_is_what_its_recipe_builds(recipe):
    style = load_style(recipe.name, styles_dir=LIBRARY)
    assert style.kind == "procedural" and style.metadata["recipe"]["seed"] == recipe.seed
    built = build_procedural(recipe).state_dict()
    for key, value in style.model.state_dict().items():
        assert torch.equal(value, built[key]), f"{recipe.name}.{key} differs: run python -m backend.styles.procedural"


def test_previews_are_distinct_pictures():
    images = {r.name: read_image(LIBRARY / f"{r.name}.png")[..., :3] for r in RECIPES}
    for name, image in images.items():
        assert image.std() > 0.08, f"{name} preview is nearly flat"
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(images[a] - images[b]).mean() > 0.1, f"{a} and {b} look alike"
