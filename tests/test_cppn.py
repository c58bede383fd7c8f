import math

import pytest
import torch

from backend.model.coords import pixel_coords
from backend.model.cppn import CPPN, CPPNConfig, Reactivity, seeded_normal
from backend.errors import InvalidInput
from backend.audio.names import CHROMA, FEATURE_INDEX, FEATURE_NAMES


def audio_frame(**values):
    a = torch.zeros(1, len(FEATURE_NAMES))
    for name, v in values.items():
        a[0, FEATURE_INDEX[name]] = v
    return a


def test_default_model_is_about_50k_parameters_of_four_sine_layers():
    model = CPPN(CPPNConfig())
    assert 45_000 <= model.n_parameters <= 55_000
    assert len(model.hidden_layers) == 3  # + the first layer = 4 sine layers


@pytest.mark.parametrize("width,height", [(160, 90), (90, 160), (100, 100)])
def test_coordinates_keep_circles_round_at_any_aspect(width, height):
    xyr = pixel_coords(width, height).reshape(height, width, 3)
    dx = xyr[0, 1, 0] - xyr[0, 0, 0]
    dy = xyr[0, 0, 1] - xyr[1, 0, 1]
    assert torch.isclose(dx, dy)  # square pixels in coordinate space
    assert torch.isclose(xyr[0, 0, 1] + dy / 2, torch.tensor(math.pi))  # height spans [-pi, pi]
    assert torch.isclose(xyr[:, :, 0].max() + dx / 2, torch.tensor(math.pi * width / height))
    assert torch.allclose(xyr[..., 2], torch.hypot(xyr[..., 0], xyr[..., 1]))


def test_config_round_trips_and_rejects_unknown_fields():
    config = CPPNConfig(hidden=32, depth=3, time_periods=(10, 20), out_channels=4, seed=7)
    assert CPPNConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InvalidInput, match="unknown fields"):
        CPPNConfig.from_dict({**config.to_dict(), "wings": 2})
    with pytest.raises(InvalidInput, match="unknown audio inputs"):
        CPPNConfig(audio_inputs=("bass", "cowbell"))
    for bad, message in [({"hidden": 12.5}, "hidden must be a whole number"),
                         ({"first_omega": float("inf")}, "first_omega must be a finite number"),
                         ({"time_periods": ["x"]}, "time periods must be a list of seconds"),
                         ({"time_periods": []}, "time periods must be > 0"),
                         ({"audio_inputs": "bass"}, "audio inputs must be a list")]:
        with pytest.raises(InvalidInput, match=message):
            CPPNConfig(**bad)


def test_same_seed_same_network_different_seed_different_network():
    a, b, c = CPPN(CPPNConfig(seed=1)), CPPN(CPPNConfig(seed=1)), CPPN(CPPNConfig(seed=2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.coord_weight, c.coord_weight)


def test_seeded_normal_draws_are_standard_normal_and_keep_torchs_values_for_a_seed():
    """Same seed, same projection as torch.randn gave before (within float32 rounding), on any CPU."""
    for shape in [(21, 128), (5, 100), (3,)]:
        draws = seeded_normal(shape, torch.Generator().manual_seed(12))
        assert draws.shape == shape and draws.dtype == torch.float64
        if len(shape) > 1:
            assert torch.allclose(draws.float(), torch.randn(shape, generator=torch.Generator().manual_seed(12)),
                                  rtol=0, atol=1e-5)
    many = seeded_normal((200_000,), torch.Generator().manual_seed(1))
    assert abs(many.mean().item()) < 0.01 and abs(many.std().item() - 1) < 0.01
    assert abs((many.abs() < 1).double().mean().item() - 0.6827) < 0.005  # the bell's shape, not just its moments


def test_audio_projection_is_fixed_not_trainable():
    model = CPPN(CPPNConfig())
    assert "audio_projection" in model.state_dict()
    assert all(p is not model.audio_projection for p in model.parameters())


def test_audio_drives_picture_and_silence_does_not():
    model = CPPN(CPPNConfig(seed=3)).eval()
    coords = pixel_coords(48, 27)
    t = torch.tensor([2.0])
    with torch.no_grad():
        silent = model(coords, t, audio_frame())
        silent_later = model(coords, t + 1 / 30, audio_frame())
        loud = model(coords, t, audio_frame(bass=1.0, rms=1.0, onset=1.0, beat_pulse=1.0))
        ignored = model(coords, t, audio_frame(bass=1.0, onset=1.0), Reactivity(amount=0.0))
    assert (silent_later - silent).abs().mean() < 0.01  # slow time drift
    assert (loud - silent).abs().mean() > 0.1  # music moves the picture
    assert torch.equal(ignored, silent)  # reactivity 0 ignores the music


def test_reactivity_controls_each_effect():
    model = CPPN(CPPNConfig(seed=3))
    terms = model.frame_terms(torch.tensor([0.0, 0.0]), torch.cat([audio_frame(), audio_frame(bass=1, onset=1)]),
                              Reactivity(swell=0.5, flash=0.4))
    assert terms.zoom.tolist() == pytest.approx([1.0, 1 / 1.5])  # bass swells the picture
    assert terms.flash.tolist() == pytest.approx([0.0, 0.4])  # onsets flash
    half = model.frame_terms(torch.tensor([0.0]), audio_frame(onset=1), Reactivity(flash=0.4, gains={"onset": 0.5}))
    assert half.flash.item() == pytest.approx(0.2)  # per-feature gain
    with pytest.raises(InvalidInput, match="unknown feature"):
        Reactivity(gains={"cowbell": 1.0})
    with pytest.raises(InvalidInput, match="amount"):
        Reactivity(amount=float("nan"))
    for bad in (float("nan"), float("inf"), -1.0, 1e40):
        with pytest.raises(InvalidInput, match="gain for bass must be a number from 0 to 100"):
            Reactivity(gains={"bass": bad})
    with pytest.raises(InvalidInput, match="reactivity amount must be a number from 0 to 100, got 1e"):
        Reactivity(amount=1e39)


def test_flash_brightens_towards_white_and_keeps_alpha():
    model = CPPN(CPPNConfig(seed=5, out_channels=4))
    coords = pixel_coords(16, 9)
    with torch.no_grad():
        base = model(coords, torch.tensor([0.0]), audio_frame())
        flashed = model(coords, torch.tensor([0.0]), audio_frame(onset=1.0), Reactivity(flash=1.0, morph=0.0))
    assert torch.allclose(flashed[..., :3], torch.ones_like(flashed[..., :3]))
    assert torch.allclose(flashed[..., 3], base[..., 3])


def test_a_style_reads_only_the_features_it_names_so_older_styles_ignore_the_chord():
    """Features are addressed by name: the chord features added in analysis version 2 move a style
    that lists them (every new style: they are default inputs), and leave a style from before them
    (which does not) exactly as it was."""
    before_chords = ("sub", "bass", "low_mid", "high_mid", "treble", "rms", "onset", "beat_pulse", *CHROMA, "centroid")
    older = CPPN(CPPNConfig(hidden=16, depth=2, audio_inputs=before_chords))
    newer = CPPN(CPPNConfig(hidden=16, depth=2))
    assert {"chord_sin", "chord_cos", "chord_major", "percussive", "harmonic"} <= set(newer.config.audio_inputs)
    time = torch.tensor([1.0])
    c_major, f_sharp_minor = audio_frame(chord_sin=0.5, chord_cos=1.0, chord_major=1.0), \
        audio_frame(chord_sin=0.5, chord_cos=0.0, chord_major=0.0)
    assert torch.equal(older.frame_terms(time, c_major).bias, older.frame_terms(time, f_sharp_minor).bias)
    assert not torch.allclose(newer.frame_terms(time, c_major).bias, newer.frame_terms(time, f_sharp_minor).bias)
