import numpy as np
import pytest
import torch

from backend.model.coords import pixel_coords
from backend.model.cppn import CPPN, CPPNConfig, Reactivity
from backend.errors import InvalidInput
from backend.audio.names import FEATURE_INDEX, FEATURE_NAMES
from backend.render.frame_renderer import FrameRenderer, HalfEvaluator, seed_time_offset
from backend.styles.library import load_style, save_style

W, H = 64, 36


def track(n=6, seed=0):
    rng = np.random.default_rng(seed)
    times = np.arange(n) / 30.0 + 3.0
    audio = rng.uniform(0, 1, (n, len(FEATURE_NAMES))).astype(np.float32)
    return times, audio


def reference_frames(model, times, audio, reactivity=None, width=W, height=H):
    with torch.no_grad():
        colour = model(pixel_coords(width, height), torch.tensor(times), torch.tensor(audio), reactivity)
    return colour.numpy().reshape(len(times), height, width, -1)


def test_cpu_frames_equal_the_reference_network(tmp_path):
    model = CPPN(CPPNConfig(seed=4)).eval()
    save_style(model, tmp_path / "s.safetensors", name="s", kind="procedural")
    style = load_style(tmp_path / "s.safetensors")
    times, audio = track()
    reactivity = Reactivity(amount=1.5, gains={"bass": 2.0})
    with FrameRenderer(style, width=W, height=H, device="cpu", reactivity=reactivity) as renderer:
        frames = renderer.render(times, audio)
        assert renderer.precision == "fp32"
    assert frames.shape == (6, H, W, 3) and frames.dtype == np.float32
    assert np.abs(frames - reference_frames(model, times, audio, reactivity)).max() < 0.01 / 255


def test_same_inputs_same_bytes_and_a_frame_does_not_depend_on_its_neighbours():
    model = CPPN(CPPNConfig(seed=5, out_channels=4))
    times, audio = track(8)
    with FrameRenderer(model, width=W, height=H, device="cpu") as a, \
            FrameRenderer(model, width=W, height=H, device="cpu", threads=1) as b:
        full = a.render(times, audio)
        again = a.render(times, audio)
        alone = b.render(times[5:6], audio[5:6])
    assert full.tobytes() == again.tobytes()
    assert full[5].tobytes() == alone[0].tobytes()


def test_seed_shifts_the_slow_drift_and_zero_shifts_nothing():
    model = CPPN(CPPNConfig(seed=6))
    times, audio = track(2)
    assert seed_time_offset(0, (29.0, 71.0)) == 0.0
    offset = seed_time_offset(3, (29.0, 71.0))
    assert 0 < offset < 29 * 71 and offset != seed_time_offset(4, (29.0, 71.0))
    with FrameRenderer(model, width=W, height=H, device="cpu", seed=0) as plain, \
            FrameRenderer(model, width=W, height=H, device="cpu", seed=3) as varied, \
            FrameRenderer(model, width=W, height=H, device="cpu", seed=3) as varied_again:
        base, var, var2 = plain.render(times, audio), varied.render(times, audio), varied_again.render(times, audio)
    assert var.tobytes() == var2.tobytes()
    assert np.abs(var - base).mean() > 0.02
    assert np.abs(var - reference_frames(model, times + offset, audio)).max() < 0.01 / 255


def test_global_amount_and_per_feature_gains_control_the_music():
    model = CPPN(CPPNConfig(seed=7))
    times = np.array([2.0, 2.0])
    audio = np.zeros((2, len(FEATURE_NAMES)), np.float32)
    audio[1, FEATURE_INDEX["bass"]] = 1.0  # frame 1: a bass hit, otherwise identical

    def bass_change(reactivity):
        with FrameRenderer(model, width=W, height=H, device="cpu", reactivity=reactivity) as r:
            quiet, loud = r.render(times, audio)
        return np.abs(loud - quiet).mean()

    normal = bass_change(Reactivity())
    assert normal > 0.02
    assert bass_change(Reactivity(amount=0.0)) == 0.0
    assert bass_change(Reactivity(gains={"bass": 0.0})) == 0.0
    assert bass_change(Reactivity(gains={"bass": 2.0})) > 1.3 * normal
    assert bass_change(Reactivity(amount=0.3)) < 0.6 * normal


def test_fp16_path_stays_close_to_the_reference_and_padding_keeps_frames_independent():
    # The CUDA path's arithmetic, run on the CPU (torch supports half matmuls there too).
    model = CPPN(CPPNConfig(seed=8)).eval()
    times, audio = track(5)
    terms = model.frame_terms(torch.tensor(times), torch.tensor(audio))
    half = HalfEvaluator(model, width=W, height=H, device="cpu", batch_size=4, chunk_rows=4 * 1024)
    first = half.evaluate(type(terms)(terms.zoom[:4], terms.bias[:4], terms.flash[:4]))
    padded = type(terms)(*(torch.cat([t[3:5], t[4:5].expand(2, *t.shape[1:])]) for t in
                           (terms.zoom, terms.bias, terms.flash)))
    second = half.evaluate(padded)
    ref = reference_frames(model, times, audio).reshape(5, W * H, 3)
    error = np.abs(torch.cat([first, second[1:2]]).numpy() - ref)
    assert error.max() < 1 / 255 and error.mean() < 0.1 / 255  # measured: 0.16 / 255 and 0.02 / 255
    assert first[3].numpy().tobytes() == second[0].numpy().tobytes()  # frame 3 in two different batches


@pytest.mark.parametrize("width,height", [(0, 10), (10, -1), (20000, 10)])
def test_bad_sizes_are_refused(width, height):
    with pytest.raises(InvalidInput, match="must be a whole number"):
        FrameRenderer(CPPN(CPPNConfig()), width=width, height=height, device="cpu")


def test_caller_model_is_left_untouched():
    model = CPPN(CPPNConfig(seed=9)).double()
    with FrameRenderer(model, width=8, height=8, device="cpu"):
        pass
    assert model.coord_weight.dtype == torch.float64
