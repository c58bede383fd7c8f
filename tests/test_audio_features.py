"""Audio features a renderer relies on: hits on the right frame, bands, beats, silence, files."""

import json
from fractions import Fraction

import numpy as np
import pytest

from backend.audio.features import AudioConfig, analyze, compute_features
from backend.audio.files import load_features, save_features
from backend.errors import Cancelled, InvalidInput
from backend.audio.names import BANDS, FEATURE_NAMES
from backend.audio.shaping import smooth
from backend.timebase import frame_count
from tests.helpers.signals import click_track, irregular_times, pulse_train, tone, write_audio

CLICKS = irregular_times(14, seed=3)  # 0.4 .. ~6 s, gaps 0.23-0.61 s
FPS = ("24", "25", "29.97", "30", "60")


@pytest.fixture(scope="module")
def click_files(tmp_path_factory):
    """One click-track file per (sample rate, channels, format), written once for all fps."""
    folder = tmp_path_factory.mktemp("clicks")
    files = {}
    for sr in (22050, 44100, 48000):
        for channels in (1, 2):
            y = click_track(CLICKS, sr=sr, duration=float(CLICKS[-1]) + 0.7, channels=channels)
            for fmt in ("wav", "flac", "mp3"):
                files[sr, channels, fmt] = write_audio(folder / f"clicks_{sr}_{channels}.{fmt}", y, sr)
    return files


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_each_click_peaks_on_its_frame(click_files, sr, channels, fmt, fps):
    features = analyze(click_files[sr, channels, fmt], config=AudioConfig(fps=fps, frame_start=1))
    onset = features.column("onset")
    rate = float(features.fps)
    frames = features.frame_numbers()
    # Each click owns the frames closer to it than to its neighbours; its peak must be there.
    bounds = np.r_[-np.inf, (CLICKS[1:] + CLICKS[:-1]) / 2, np.inf]
    for t, lo, hi in zip(CLICKS, bounds[:-1], bounds[1:], strict=True):
        own = (features.times >= lo) & (features.times < hi)
        peak_frame = frames[own][np.argmax(onset[own])]
        assert abs(peak_frame - (1 + round(t * rate))) <= 1, f"click at {t:.3f} s peaked on frame {peak_frame}"
        assert onset[own].max() > 0.5


def test_frames_follow_the_timebase(tmp_path):
    sr = 48000
    path = write_audio(tmp_path / "tone.wav", tone(220, sr=sr, duration=10.0), sr)
    features = analyze(path, config=AudioConfig(fps="29.97", frame_start=1001))
    assert features.fps == Fraction(30000, 1001)
    assert features.n_frames == frame_count(480000, sr, Fraction(30000, 1001)) == 300  # ceil(299.7)
    np.testing.assert_allclose(features.times, np.arange(300) * 1001 / 30000)
    assert features.frame_numbers()[[0, -1]].tolist() == [1001, 1300]
    assert features.values.dtype == np.float32 and features.values.shape == (300, len(FEATURE_NAMES))
    assert features.names == FEATURE_NAMES and features.duration == 10.0 and features.sample_rate == sr
    assert features.values.min() >= 0 and features.values.max() <= 1


@pytest.mark.parametrize("freq,band", [(40, "sub"), (100, "bass"), (6000, "treble")])
def test_a_tone_lights_its_band_far_above_the_others(freq, band):
    features = compute_features(tone(freq, sr=44100, duration=2.0), 44100)
    steady = slice(10, -10)  # away from the fades
    levels = {b: np.median(features.raw_column(b)[steady]) for b in BANDS}
    assert levels[band] == pytest.approx(-9.0, abs=1.0)  # amplitude 0.5 sine: -9 dBFS
    for other in BANDS:
        if other != band:
            assert levels[band] - levels[other] > 30, f"{other} at {levels[other]:.1f} dB vs {band}"


def test_tones_in_turn_light_each_normalised_band_in_turn():
    sr = 44100
    y = np.concatenate([tone(f, sr=sr, duration=2.0) for f in (40, 100, 6000)])
    features = compute_features(y, sr)
    segment = (features.times // 2).astype(int)
    for k, band in enumerate(("sub", "bass", "treble")):
        inside = (segment == k) & (np.abs(features.times - (2 * k + 1)) < 0.7)
        outside = (segment != k) & (np.abs(features.times % 2 - 1) < 0.7)
        assert np.median(features.column(band)[inside]) > 0.9
        assert np.median(features.column(band)[outside]) < 0.1


def test_a_steady_tone_sits_at_zero_without_nan():
    """A feature that never changes has no range: it maps to 0 (documented), never NaN."""
    features = compute_features(tone(440, sr=32000, duration=3.0, fade_s=0.0), 32000)
    steady = slice(15, -15)
    assert np.isfinite(features.values).all() and np.isfinite(features.raw).all()
    assert features.column("low_mid")[steady].max() < 0.05
    assert features.column("onset")[steady].max() < 0.1
    assert np.argmax(features.values[45, 11:23]) == 9  # chroma: A
    # its hard start and stop are two hits, not a beat: no phantom grid between them
    assert features.tempo == 0.0 and len(features.beat_times) == 0
    assert features.column("beat_pulse").max() == 0.0


@pytest.mark.parametrize("freq", [250, 1000, 6000])
def test_the_centroid_of_a_tone_is_its_frequency(freq):
    features = compute_features(tone(freq, sr=44100, duration=2.0), 44100)
    assert np.median(features.raw[15:-15, FEATURE_NAMES.index("centroid")]) == pytest.approx(freq, rel=0.03)


def test_120_bpm_pulses_give_tempo_and_a_pulse_every_half_second():
    y, beats = pulse_train(120, sr=44100, duration=8.0)
    features = compute_features(y, 44100, config=AudioConfig(fps=30))
    assert features.tempo == pytest.approx(120, abs=2)
    assert len(features.beat_times) == len(beats)
    np.testing.assert_allclose(features.beat_times, beats, atol=1 / 30)
    pulse_frames = np.flatnonzero(features.column("beat_pulse") > 0.999)
    np.testing.assert_allclose(np.diff(pulse_frames) / 30, 0.5, atol=1 / 30 + 1e-9)
    for b in beats:
        assert np.min(np.abs(pulse_frames - round(b * 30))) <= 1
    # beat_cos is 0.5 + 0.5 cos(2 pi phase): near 1 on the beat, near 0 half-way between beats
    on_beat = np.round(beats * 30).astype(int)
    assert np.all(features.column("beat_cos")[on_beat] > 0.9)
    assert np.all(features.column("beat_cos")[np.round((beats[:-1] + 0.25) * 30).astype(int)] < 0.1)
    assert np.allclose(features.column("tempo")[10:-10], 0.5, atol=0.02)  # 120 BPM on the 60..180 scale


@pytest.mark.parametrize("bpm", [90, 140, 170])
def test_other_tempos_are_found_without_octave_errors(bpm):
    """Not only the tracker's 120 BPM prior: an even pulse far from it keeps its own tempo."""
    y, beats = pulse_train(bpm, sr=44100, duration=12.0)
    features = compute_features(y, 44100, config=AudioConfig(fps=30))
    assert features.tempo == pytest.approx(bpm, abs=2)
    assert len(features.beat_times) == len(beats)
    np.testing.assert_allclose(features.beat_times, beats, atol=1 / 30)


def test_silence_gives_all_zero_features():
    features = compute_features(np.zeros((44100 * 3, 2), np.float32), 44100)
    assert features.n_frames == 90
    assert np.all(features.values == 0) and np.isfinite(features.raw).all()
    assert features.tempo == 0.0 and len(features.beat_times) == 0


def test_one_loud_hit_does_not_flatten_the_others():
    times = irregular_times(16, seed=5)
    y = click_track(times, sr=44100, duration=float(times[-1]) + 0.5, amplitude=0.1)
    y += click_track(times[7:8], sr=44100, duration=float(times[-1]) + 0.5, amplitude=0.9, seed=9)
    features = compute_features(y, 44100)
    onset = features.column("onset")
    peaks = [onset[max(0, round(t * 30) - 1): round(t * 30) + 2].max() for t in times]
    assert min(peaks) > 0.6


def test_streaming_in_tiny_blocks_equals_one_pass_bit_for_bit(tmp_path):
    y, _ = pulse_train(100, sr=44100, duration=12.0)
    y = y + tone(330, sr=44100, duration=12.0, amplitude=0.1)
    path = write_audio(tmp_path / "mix.wav", y, 44100)
    whole = analyze(path, config=AudioConfig(fps=25), block_seconds=60)
    streamed = analyze(path, config=AudioConfig(fps=25), block_seconds=0.037)  # ~1600 samples a block
    np.testing.assert_array_equal(streamed.raw, whole.raw)
    np.testing.assert_array_equal(streamed.values, whole.values)
    np.testing.assert_array_equal(streamed.beat_times, whole.beat_times)


def test_smoothing_keeps_peaks_on_their_frame_unless_causal():
    x = np.zeros(100)
    x[50:52] = 1.0  # a hit lasting two frames
    zero_phase = smooth(x, attack_s=0.05, release_s=0.2, fps=30, zero_phase=True)
    assert np.argmax(zero_phase) == 50 and zero_phase[50] == zero_phase[51] == 1.0  # full height, on time
    assert 0 < zero_phase[49] < 1 and zero_phase[52] > zero_phase[49]  # rises before, falls more slowly after
    assert zero_phase[:43].max() < 0.01  # the anticipation lasts a few attack times, no more
    assert np.all(zero_phase >= x) and zero_phase.max() == 1.0  # never below the input, never overshoots
    causal = smooth(x, attack_s=0.05, release_s=0.2, fps=30, zero_phase=False)
    assert np.all(causal[:50] == 0) and causal[50] < 0.6 and np.argmax(causal) == 51  # reacts after


def test_long_audio_is_refused_with_its_limit():
    with pytest.raises(InvalidInput, match=r"limited to .* h \(AudioConfig.max_seconds\)"):
        compute_features(np.zeros(44100 * 3, np.float32), 44100, config=AudioConfig(max_seconds=2.0))


@pytest.mark.parametrize("bad,message", [
    (dict(fps=0), "fps must be > 0"), (dict(fps=-1), "fps must be > 0"), (dict(fps="nan"), "fps must be a number"),
    (dict(fps=250), "fps must be > 0 and at most 200, got 250"), (dict(smoothing={"loudness": (1, 2)}), "unknown feature 'loudness'"),
])
def test_bad_settings_name_the_problem(bad, message):
    with pytest.raises(InvalidInput, match=message):
        AudioConfig(**bad)


def test_int16_samples_are_read_as_full_scale():
    y = tone(440, sr=22050, duration=1.0)
    as_int = np.round(y * 32767).astype(np.int16)
    float_features, int_features = compute_features(y, 22050), compute_features(as_int, 22050)
    np.testing.assert_allclose(int_features.raw_column("rms"), float_features.raw_column("rms"), atol=0.01)


def test_bad_arrays_are_refused():
    with pytest.raises(InvalidInput, match="NaN"):
        compute_features(np.full(44100, np.nan, np.float32), 44100)
    late = np.zeros(88200, np.float32)
    late[66150] = np.inf
    with pytest.raises(InvalidInput, match="NaN or infinite samples at 1.50 s"):
        compute_features(late, 44100)
    with pytest.raises(InvalidInput, match="transpose"):
        compute_features(np.zeros((2, 44100), np.float32), 44100)
    with pytest.raises(InvalidInput, match="at least 0.5 s"):
        compute_features(np.zeros(4410, np.float32), 44100)


def test_progress_reports_and_cancels():
    events = []
    compute_features(tone(220, sr=16000, duration=40.0), 16000, progress=events.append)
    assert events[0].stage == "analyse" and events[-1].done == events[-1].total == 40
    with pytest.raises(Cancelled):
        compute_features(tone(220, sr=16000, duration=40.0), 16000, progress=lambda e: False)


def test_the_progress_reaches_its_end_only_when_the_features_are_done():
    """Beats and chords come after the audio is read (the first run compiles them for half a
    minute): the bar says so, and does not sit at 100 % meanwhile."""
    events = []
    compute_features(tone(220, sr=16000, duration=40.0), 16000, progress=events.append)
    assert all(e.done < e.total for e in events[:-1]) and events[-1].message == "done"
    assert any(e.message.startswith("finding beats and chords") for e in events)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_saved_features_load_back(tmp_path, suffix):
    y, _ = pulse_train(120, sr=22050, duration=3.0)
    features = compute_features(y, 22050, config=AudioConfig(fps="29.97", frame_start=101))
    path = save_features(features, tmp_path / f"f{suffix}")
    back = load_features(path)
    np.testing.assert_allclose(back.values, features.values, atol=1e-6)
    np.testing.assert_allclose(back.times, features.times, atol=1e-6)
    assert (back.fps, back.frame_start, back.names) == (Fraction(30000, 1001), 101, FEATURE_NAMES)
    np.testing.assert_allclose(back.beat_times, features.beat_times, atol=1e-6)
    assert back.config["fps"] == "30000/1001" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_npz_and_csv_hold_the_documented_fields(tmp_path):
    features = compute_features(tone(220, sr=22050, duration=1.0), 22050, config=AudioConfig(fps=24))
    with np.load(save_features(features, tmp_path / "f.npz")) as data:
        assert data["features"].dtype == np.float32 and data["features"].shape == (24, len(FEATURE_NAMES))
        assert list(data["names"]) == list(FEATURE_NAMES) and str(data["fps"]) == "24"
        assert int(data["frame_start"]) == 1 and data["times"][1] == pytest.approx(1 / 24)
    lines = save_features(features, tmp_path / "f.csv").read_text().splitlines()
    assert lines[0].split(",") == ["frame", "time", *FEATURE_NAMES] and len(lines) == 25
    assert lines[2].split(",")[:2] == ["2", "0.041667"]
    doc = json.loads(save_features(features, tmp_path / "f.json").read_text())
    assert doc["fps"] == "24" and len(doc["features"]) == 24 and doc["names"] == list(FEATURE_NAMES)


def test_soft_notes_in_a_quiet_passage_rise_above_the_onset_floor():
    """Local normalisation: after a loud passage, hits 18 dB softer read as hits (0.2 with the track's scale alone)."""
    loud = np.arange(0.3, 4.0, 0.5)
    soft = np.arange(7.3, 11.0, 0.5)
    y = click_track(loud, sr=44100, duration=11.5, amplitude=0.8)
    y += click_track(soft, sr=44100, duration=11.5, amplitude=0.1, seed=3)
    onset = compute_features(y, 44100).column("onset")
    soft_peaks = np.array([onset[round(t * 30) - 1: round(t * 30) + 2].max() for t in soft])
    between = np.array([onset[round((t + 0.25) * 30)] for t in soft])
    assert soft_peaks.min() > 0.5 and between.max() < 0.1
    loud_peaks = np.array([onset[round(t * 30) - 1: round(t * 30) + 2].max() for t in loud])
    assert loud_peaks.min() > 0.9  # the loud passage keeps its own scale
