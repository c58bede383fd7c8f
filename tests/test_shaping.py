"""Raw measurements to [0, 1] (backend/audio/shaping.py): levels are scaled per track between
robust percentiles, a steady signal sits at 0, silence is all zeros, and smoothing follows its
attack and release times."""

import math

import numpy as np
import pytest

from backend.audio.features import AudioConfig
from backend.audio.names import CHROMA, FEATURE_INDEX, FEATURE_NAMES
from backend.audio.shaping import normalise_levels, normalise_onset, shape_features, smooth

FPS = 30.0


def test_levels_map_the_low_and_high_percentiles_to_0_and_1():
    db = np.linspace(-60, -12, 1000)  # a 48 dB swing
    out = normalise_levels(db, np.ones(1000, bool), percentiles=(5, 95), min_range=12)
    lo, hi = np.percentile(db, [5, 95])
    assert out[np.argmin(np.abs(db - lo))] == pytest.approx(0, abs=0.002)
    assert out[np.argmin(np.abs(db - hi))] == pytest.approx(1, abs=0.002)
    assert out[500] == pytest.approx(0.5, abs=0.01) and out.min() == 0 and out.max() == 1


def test_one_loud_hit_does_not_flatten_the_rest():
    db = np.tile([-40.0, -20.0], 500)  # a beat swinging 20 dB ...
    db[100] = 0.0  # ... and one hit 20 dB louder than everything else
    out = normalise_levels(db, np.ones(1000, bool), percentiles=(5, 97), min_range=12)
    assert out[100] == 1.0 and out[1] == 1.0 and out[0] == 0.0  # the beat still swings fully


def test_a_steady_level_sits_at_0_and_a_small_wobble_moves_little():
    active = np.ones(300, bool)
    assert np.all(normalise_levels(np.full(300, -20.0), active, percentiles=(5, 97), min_range=12) == 0)
    wobble = -20 + 1.5 * np.sin(np.arange(300) / 5)  # +-1.5 dB: less than the 12 dB a full swing needs
    assert normalise_levels(wobble, active, percentiles=(5, 97), min_range=12).max() <= 3 / 12 + 1e-9


def test_inactive_frames_are_0_and_no_active_frame_gives_all_zeros():
    db = np.linspace(-50, -10, 100)
    active = db > -30
    out = normalise_levels(db, active, percentiles=(5, 97), min_range=12)
    assert np.all(out[~active] == 0) and out[active].max() == 1
    assert np.all(normalise_levels(db, np.zeros(100, bool), percentiles=(5, 97), min_range=12) == 0)


def test_levels_further_below_than_max_range_count_as_off():
    db = np.concatenate([np.full(50, -100.0), np.linspace(-40, -10, 50)])  # a long tail far below the music
    out = normalise_levels(db, np.ones(100, bool), percentiles=(5, 97), min_range=12, max_range=24)
    top = np.percentile(db, 97)
    np.testing.assert_allclose(out, np.clip((db - (top - 24)) / 24, 0, 1))  # 0 at 24 dB under the top, not at -100


def test_onsets_scale_so_the_strong_hits_reach_1_and_noise_stays_low():
    x = np.zeros(200)
    x[10::20] = np.linspace(0.2, 1.0, 10)  # ten hits of rising strength
    out = normalise_onset(x, np.ones(200, bool), percentile=90, min_peak=0.04)
    assert out[190] == 1.0 and out[10] == pytest.approx(0.2 / np.percentile(x[10::20], 90))
    noise = np.abs(np.random.default_rng(0).normal(0, 0.002, 200))  # a steady tone's flux jitter
    assert normalise_onset(noise, np.ones(200, bool), percentile=90, min_peak=0.04).max() < 0.25


def step_response(attack_s, release_s, zero_phase):
    x = np.zeros(300)
    x[100:200] = 1.0
    return smooth(x, attack_s=attack_s, release_s=release_s, fps=FPS, zero_phase=zero_phase)


def test_causal_smoothing_rises_over_the_attack_and_falls_over_the_release():
    y = step_response(0.1, 0.5, zero_phase=False)
    assert y[99] == 0 and y[100 + 3 - 1] == pytest.approx(1 - math.exp(-1))  # 3 frames = 0.1 s after the rise
    assert y[199 + 15] == pytest.approx(y[199] * math.exp(-1), rel=1e-9)  # 15 frames = 0.5 s after the fall


def test_zero_phase_smoothing_rises_before_the_event_and_keeps_the_peak_on_it():
    y = step_response(0.1, 0.5, zero_phase=True)
    assert np.all(y[100:200] == 1.0)  # full height for the whole event, on time
    assert y[100 - 3] == pytest.approx(math.exp(-1), rel=1e-9)  # 1/e one attack time (0.1 s) before
    assert y[199 + 15] == pytest.approx(math.exp(-1), rel=1e-9)  # 1/e one release time (0.5 s) after
    assert y.max() == 1.0 and np.all(np.diff(y[:100]) >= 0) and np.all(np.diff(y[200:]) <= 0)


def test_no_smoothing_times_change_nothing():
    x = np.random.default_rng(2).uniform(size=50)
    assert np.array_equal(smooth(x, attack_s=0, release_s=0, fps=FPS), x)


def raw_frames(n=300):
    """Raw rows as the analysis gives them: dB levels, flux, beats, tempo, chroma energies, centroid Hz."""
    raw = np.zeros((n, len(FEATURE_NAMES)))
    raw[:, :6] = -20.0  # bands and rms, steady
    raw[:, FEATURE_INDEX["centroid"]] = 1000.0
    return raw


def test_silence_shapes_to_all_zeros():
    raw = raw_frames()
    raw[:, :6] = -120.0  # under the -80 dB floor
    assert np.all(shape_features(raw, AudioConfig()) == 0)


def test_a_steady_tone_leaves_every_level_at_0_and_the_bands_move_only_when_the_music_does():
    raw = raw_frames()
    assert np.all(shape_features(raw, AudioConfig())[:, :6] == 0)
    raw[150:, FEATURE_INDEX["bass"]] = 4.0  # the bass comes in 24 dB louder at frame 150
    bass = shape_features(raw, AudioConfig(smoothing={}))[:, FEATURE_INDEX["bass"]]
    assert np.all(bass[:150] == 0) and np.all(bass[150:] == 1)


def test_tempo_maps_60_to_180_bpm_onto_0_to_1_and_beat_phase_is_0_without_beats():
    raw = raw_frames(4)
    raw[:, FEATURE_INDEX["tempo"]] = [0.0, 60.0, 120.0, 200.0]
    raw[:, FEATURE_INDEX["beat_sin"]] = 1.0
    shaped = shape_features(raw, AudioConfig(smoothing={}))
    assert shaped[:, FEATURE_INDEX["tempo"]].tolist() == [0.0, 0.0, 0.5, 1.0]
    assert np.all(shaped[:, FEATURE_INDEX["beat_sin"]] == 1.0)  # 0.5 + 0.5 * sin: sin 1 -> 1
    raw[:, FEATURE_INDEX["tempo"]] = 0.0  # no beats found anywhere
    assert np.all(shape_features(raw, AudioConfig(smoothing={}))[:, FEATURE_INDEX["beat_sin"]] == 0)


def test_chroma_is_per_frame_contrast_from_the_median_to_the_strongest_pitch_class():
    raw = raw_frames(3)
    chroma = slice(FEATURE_INDEX[CHROMA[0]], FEATURE_INDEX[CHROMA[-1]] + 1)
    raw[:, chroma] = 1.0
    raw[0, FEATURE_INDEX["chroma_a"]] = 5.0  # an A over even noise
    raw[1, FEATURE_INDEX["chroma_c"]], raw[1, FEATURE_INDEX["chroma_e"]] = 9.0, 5.0  # C with a softer E
    shaped = shape_features(raw, AudioConfig(smoothing={}))[:, chroma]
    assert shaped[0].tolist() == [0] * 9 + [1.0] + [0] * 2
    assert shaped[1, 0] == 1.0 and shaped[1, 4] == pytest.approx(0.5) and shaped[1, 1] == 0
    assert np.all(shaped[2] == 0)  # noise alone: no pitch class stands out
