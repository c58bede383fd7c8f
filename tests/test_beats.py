"""Beat tracking on an onset envelope (backend/audio/beats.py): beats land on the hits, at the
pulse's own tempo; a steady sound has no beat; per-frame pulse, phase and tempo follow the grid."""

from fractions import Fraction

import numpy as np
import pytest

from backend.audio.beats import BeatGrid, beat_features, track_beats

HOP_RATE = 200  # envelope samples per second, as the analysis uses (5 ms)


def click_envelope(bpm, *, seconds=12.0, start=0.5, strength=lambda k: 1.0):
    """An onset envelope of hits every beat (each a short decaying flux peak); returns (envelope, hit times)."""
    envelope = np.zeros(int(seconds * HOP_RATE))
    hits = np.arange(start, seconds - 0.3, 60.0 / bpm)
    for k, t in enumerate(hits):
        i = int(round(t * HOP_RATE))
        envelope[i: i + 6] += strength(k) * np.exp(-np.arange(6) / 1.5)
    return envelope, hits


def nearest(beats, hits):
    """For each beat, its distance (s) to the nearest hit."""
    return np.abs(beats[:, None] - hits[None, :]).min(axis=1)


@pytest.mark.parametrize("bpm", [90, 120, 140, 170, 180, 190])
def test_a_click_train_gives_one_beat_on_every_click_at_its_own_tempo(bpm):
    envelope, hits = click_envelope(bpm)
    grid = track_beats(envelope, hop_rate=HOP_RATE)
    # not the tracker's 120 prior, and not half: at 180 and 190 the tracker first locks to 90 and 95,
    # and the hits as strong halfway between its beats double it
    assert grid.tempo == pytest.approx(bpm, abs=1.0)
    assert len(grid.beat_times) == len(hits)
    assert nearest(grid.beat_times, hits).max() <= 0.010  # within two 5 ms envelope samples


def test_the_envelope_delay_moves_every_beat_by_that_much():
    envelope, hits = click_envelope(120)
    grid = track_beats(envelope, hop_rate=HOP_RATE, delay_s=0.25)
    assert nearest(grid.beat_times - 0.25, hits).max() <= 0.010


@pytest.mark.parametrize("case", ["silence", "steady", "start and stop", "two hits"])
def test_no_beat_without_a_pulse(case):
    envelope = np.zeros(12 * HOP_RATE)
    if case == "steady":  # a steady tone's flux: small and even
        envelope += 0.01
    elif case == "start and stop":  # a tone with a hard start and end: two hits are no beat
        envelope[100] = envelope[2200] = 1.0
    elif case == "two hits":  # ... nor are two hits a second apart in a short clip
        envelope = envelope[: 3 * HOP_RATE]
        envelope[100] = envelope[300] = 1.0
    grid = track_beats(envelope, hop_rate=HOP_RATE)
    assert grid.tempo == 0.0 and len(grid.beat_times) == 0


def test_a_quiet_intro_before_the_band_comes_in_has_no_beats_but_a_breakdown_keeps_its_grid():
    envelope, hits = click_envelope(120, strength=lambda k: 0.05 if k < 4 else 1.0)  # 4 faint ticks first
    grid = track_beats(envelope, hop_rate=HOP_RATE)
    assert grid.beat_times[0] == pytest.approx(hits[4], abs=0.010)
    envelope, hits = click_envelope(120, strength=lambda k: 0.1 if 8 <= k < 14 else 1.0)  # a quiet middle
    grid = track_beats(envelope, hop_rate=HOP_RATE)
    assert len(grid.beat_times) == len(hits) and nearest(grid.beat_times, hits).max() <= 0.010


def test_pulse_phase_and_tempo_per_frame():
    grid = BeatGrid(120.0, np.array([0.5, 1.0, 1.5, 2.0]))
    times = np.arange(90) / 30.0  # 3 s at 30 fps
    features = beat_features(grid, times, Fraction(30), pulse_decay_s=0.1)
    pulse, phase, tempo = features["beat_pulse"], features["beat_phase"], features["tempo"]
    assert np.flatnonzero(pulse == 1.0).tolist() == [15, 30, 45, 60]  # the frame of each beat, at full height
    assert pulse[16] == pytest.approx(np.exp(-1 / 30 / 0.1)) and pulse[14] == 0.0  # decays after, nothing before
    assert pulse[29] == pytest.approx(np.exp(-14 / 30 / 0.1))
    assert phase[[15, 30, 60]] == pytest.approx([0, 0, 0], abs=1e-9)
    assert phase[[0, 22, 37]] == pytest.approx([0.0, 7 / 15, 7 / 15])  # extrapolated before the first beat too
    assert phase[69] == pytest.approx(0.6)  # and after the last: 2.3 s is 0.6 of a beat past 2.0 s
    assert tempo == pytest.approx(np.full(90, 120.0))


def test_without_beats_every_beat_feature_is_zero():
    features = beat_features(BeatGrid(0.0, np.zeros(0)), np.arange(30) / 30.0, Fraction(30), pulse_decay_s=0.1)
    assert all(np.all(series == 0) for series in features.values())
