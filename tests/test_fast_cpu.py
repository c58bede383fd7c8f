import numpy as np
import pytest
import torch

from backend.model.coords import pixel_coords
from backend.model.cppn import CPPN, CPPNConfig, Reactivity
from backend.render.fast_cpu import TILE, FastCPUEvaluator, sin_inplace
from backend.audio.names import FEATURE_NAMES


def some_terms(model, n=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    times = torch.linspace(0.0, 40.0, n, dtype=torch.float64)
    audio = torch.rand((n, len(FEATURE_NAMES)), generator=gen)
    return model.frame_terms(times, audio, Reactivity(flash=0.8))


def reference(model, width, height, terms):
    with torch.no_grad():
        return model.render_pixels(pixel_coords(width, height), terms).numpy()  # (B, N, C)


def test_sine_matches_float64_sine_over_a_wide_range():
    x = np.concatenate([np.linspace(-300, 300, 200_001), np.linspace(-5000, 5000, 100_001),
                        [0.0, np.pi / 2, -np.pi, 1e-30]]).astype(np.float32)
    y = x.copy()
    sin_inplace(y)
    assert np.abs(y - np.sin(x.astype(np.float64))).max() < 1e-6


@pytest.mark.parametrize("config,width,height", [
    (CPPNConfig(seed=1), 96, 54),  # default 4x128 network
    (CPPNConfig(seed=2, hidden=32, depth=3, out_channels=4), 61, 37),  # RGBA, odd size, last tile partial
    (CPPNConfig(seed=3, hidden=16, depth=1), 40, 30),  # no hidden layers at all
])
def test_equals_the_reference_network_well_under_one_level_of_8_bit(config, width, height):
    model = CPPN(config).eval()
    terms = some_terms(model)
    ref = reference(model, width, height, terms)
    with FastCPUEvaluator(model, width=width, height=height, threads=2) as fast:
        for i in range(3):
            out = fast.evaluate(terms, i)
            assert out.shape == (width * height, config.out_channels) and out.dtype == np.float32
            assert np.abs(out - ref[i]).max() < 0.01 / 255


def test_many_tiles_and_flash_match_reference():
    model = CPPN(CPPNConfig(seed=5, hidden=24, depth=2)).eval()
    width, height = 160, 3 * TILE // 160 + 7  # several tiles plus a partial one
    terms = some_terms(model, n=1, seed=4)
    with FastCPUEvaluator(model, width=width, height=height, threads=2) as fast:
        out = fast.evaluate(terms)
    assert np.abs(out - reference(model, width, height, terms)[0]).max() < 0.01 / 255


def test_bytes_do_not_depend_on_threads_or_order_and_torch_threads_are_restored():
    model = CPPN(CPPNConfig(seed=7)).eval()
    terms = some_terms(model)
    before = torch.get_num_threads()
    with FastCPUEvaluator(model, width=120, height=90, threads=1) as one, \
            FastCPUEvaluator(model, width=120, height=90, threads=3) as three:
        a = [one.evaluate(terms, i) for i in (0, 1, 2)]
        b = [three.evaluate(terms, i) for i in (2, 0, 1)]
    assert torch.get_num_threads() == before
    assert a[0].tobytes() == b[1].tobytes()
    assert a[1].tobytes() == b[2].tobytes()
    assert a[2].tobytes() == b[0].tobytes()
    assert a[0].tobytes() != a[1].tobytes()  # different frames really differ
