"""Per-hop spectral measurements (backend/audio/spectral.py): a tone lands in its band with its
power, chroma names its note, the centroid is its frequency, a click's flux peaks on its hop, the
drums are told apart from the harmony, and hops map to frames by exact arithmetic, streamed or not."""

from fractions import Fraction

import numpy as np
import pytest

from backend.audio import hpss
from backend.audio.names import BANDS
from backend.audio.spectral import (ANALYSIS_RATE, COL_BANDS, COL_CHROMA, COL_FREQ_POWER, COL_HARMONIC, COL_MS,
                                    COL_PERCUSSIVE, COL_POWER, HOP, LONG_FFT, SEMITONES_FROM_HZ, FrameMeans,
                                    HopAnalyzer, frame_window_hops, log_frequency_bands, window_max)

SR = ANALYSIS_RATE


def tone(freq, seconds=1.0, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def click(at_s, seconds=1.0):
    y = np.zeros(int(seconds * SR), np.float32)
    i = int(at_s * SR)
    y[i: i + 64] = 0.8 * np.random.default_rng(0).uniform(-1, 1, 64)  # 2 ms of noise
    return y


def analyse(y, block=None):
    analyzer = HopAnalyzer()
    parts = [analyzer.push(y[i: i + (block or len(y))]) for i in range(0, len(y), block or len(y))]
    parts.append(analyzer.finish())
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("freq,band", [(40, "sub"), (100, "bass"), (440, "low_mid"), (2000, "high_mid"),
                                       (8000, "treble")])
def test_a_tone_lands_in_its_band_with_its_power(freq, band):
    _, levels = analyse(tone(freq, amplitude=0.5))
    middle = levels[len(levels) // 2]
    powers = dict(zip(BANDS, middle[COL_BANDS]))
    assert powers[band] == pytest.approx(0.125, rel=0.01)  # mean square of a 0.5 sine
    assert sum(p for b, p in powers.items() if b != band) < 1e-4 * powers[band]  # and nowhere else
    assert middle[COL_FREQ_POWER] / middle[COL_POWER] == pytest.approx(freq, rel=1e-3)  # the centroid


def test_rms_reads_the_mean_square_on_the_short_window():
    _, levels = analyse(tone(440, amplitude=0.5) + tone(1000, amplitude=0.25))
    assert levels[len(levels) // 2, COL_MS] == pytest.approx(0.125 + 0.03125, rel=0.01)


def test_chroma_names_the_note_and_ignores_the_bass_below_120_hz():
    _, levels = analyse(tone(440))  # A4
    chroma = levels[len(levels) // 2, COL_CHROMA]
    assert np.argmax(chroma) == 9 and chroma[9] > 5 * np.delete(chroma, 9).max()  # C, C#, ... A is 9
    _, levels = analyse(tone(55))  # A1: below the chroma range
    assert levels[len(levels) // 2, COL_CHROMA].sum() < 1e-6


def test_a_click_peaks_the_flux_on_its_hop_and_silence_has_none():
    flux, _ = analyse(click(0.5))
    assert np.argmax(flux) == round(0.5 * SR / HOP)
    assert flux[: round(0.45 * SR / HOP)].max() == 0 and flux[round(0.55 * SR / HOP):].max() == 0


def test_any_blocks_give_the_same_hops_bit_for_bit_and_their_count():
    """12 s: hops are computed in whole chunks of 5.12 s, across chunk edges, block edges and the end."""
    y = tone(330, seconds=12.0, amplitude=0.3) + click(0.7, seconds=12.0) + click(5.12, seconds=12.0)
    flux, levels = analyse(y)
    for block in (777, 160, 5000, 163_841):
        streamed_flux, streamed_levels = analyse(y, block)
        assert len(streamed_flux) == len(flux) == 1 + len(y) // HOP
        np.testing.assert_array_equal(streamed_flux, flux)
        np.testing.assert_array_equal(streamed_levels, levels)


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001), Fraction(60)])
@pytest.mark.parametrize("offset", [0, 64])
def test_each_hop_belongs_to_the_frame_whose_half_frame_window_holds_its_time(fps, offset):
    n_frames = 200
    start, end = frame_window_hops(0, n_frames, fps, offset)
    assert start[0] == 0 and np.all(start[1:] == end[:-1])  # the windows tile the hops: no gap, no overlap
    for i in range(n_frames):
        for j in range(max(0, start[i] - 1), end[i] + 1):
            time = Fraction(j * HOP + offset, SR)
            inside = Fraction(2 * i - 1, 2) / fps <= time < Fraction(2 * i + 1, 2) / fps
            assert inside == (start[i] <= j < end[i]), (i, j)


def test_window_max_puts_a_one_hop_spike_on_its_frame():
    fps = Fraction(30000, 1001)
    values = np.zeros(2000, np.float32)
    spikes = [37, 400, 1234]
    values[spikes] = [1.0, 0.5, 0.25]
    frames = window_max(values, fps, n_frames=300)
    for hop, height in zip(spikes, [1.0, 0.5, 0.25]):
        assert frames[round(hop * HOP / SR * fps)] == height
    assert np.count_nonzero(frames) == 3


def test_frame_means_streamed_in_pieces_are_the_means_of_each_frames_hops():
    fps = Fraction(25)
    rows = np.random.default_rng(1).normal(size=(1000, 3))
    means = FrameMeans(fps, 3)
    pieces = [means.push(rows[a:b]) for a, b in [(0, 7), (7, 300), (300, 301), (301, 1000)]]
    streamed = np.concatenate([*pieces, means.finish(125)])
    start, end = frame_window_hops(0, 125, fps)
    expected = np.array([rows[a:min(b, 1000)].mean(axis=0) for a, b in zip(start, end)])
    assert streamed.shape == (125, 3)
    np.testing.assert_allclose(streamed, expected, rtol=1e-12, atol=1e-12)
    at_once = FrameMeans(fps, 3)
    np.testing.assert_array_equal(np.concatenate([at_once.push(rows), at_once.finish(125)]), streamed)  # same bits


def chord(freqs, seconds, amplitude=0.15):
    t = np.arange(int(seconds * SR)) / SR
    return sum(amplitude * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


def whole_mix(power, freq_half_width):
    """In place of the separation: every bin counted in both parts, as before it existed."""
    ones = np.ones((len(power) - 2 * hpss.HALF_HOPS, power.shape[1]), np.float32)
    return ones, ones


def test_onsets_are_the_drums_a_chord_change_without_an_attack_is_not_a_hit(monkeypatch):
    """The flux is the percussive part's: C major crossfading into A minor in 40 ms (new partials
    appear) stays under a quarter of what the whole mix's flux makes of it; a 2 ms click is a hit."""
    c_major, a_minor = chord((261.6, 329.6, 392.0), 4.0), chord((220.0, 261.6, 329.6), 4.0)
    fade = np.clip((np.arange(len(c_major)) / SR - 2.0) / 0.04, 0, 1).astype(np.float32)
    y = c_major * (1 - fade) + a_minor * fade + click(1.0, seconds=4.0)
    hop = lambda s: round(s * SR / HOP)  # noqa: E731
    flux, _ = analyse(y)
    click_flux, change_flux = flux[hop(1.0) - 2: hop(1.0) + 3].max(), flux[hop(1.9): hop(2.2)].max()
    monkeypatch.setattr(hpss, "soft_masks", whole_mix)
    mix_flux, _ = analyse(y)
    assert click_flux > 0.5 and change_flux < 0.005 * click_flux  # measured: 0.79 and 0.4 %
    assert change_flux < 0.4 * mix_flux[hop(1.9): hop(2.2)].max()  # measured: a quarter


def test_the_percussive_part_holds_the_click_and_the_harmonic_part_the_tone():
    y = tone(440, seconds=3.0, amplitude=0.25) + click(1.5, seconds=3.0)
    _, levels = analyse(y)
    at_click = levels[round(1.5 * SR / HOP) - 2: round(1.5 * SR / HOP) + 3]
    steady = levels[round(0.5 * SR / HOP): round(1.0 * SR / HOP)]
    assert np.median(steady[:, COL_HARMONIC]) == pytest.approx(0.25**2 / 2, rel=0.02)  # the tone's mean square
    assert np.median(steady[:, COL_PERCUSSIVE]) < 1e-3 * np.median(steady[:, COL_HARMONIC])
    assert at_click[:, COL_PERCUSSIVE].max() > 100 * np.median(steady[:, COL_PERCUSSIVE])


def test_snare_like_noise_bursts_leave_the_chroma_of_a_chord_as_it_was(monkeypatch):
    """Chroma is the harmonic part's: loud noise bursts on every sixteenth move a chord's chroma by
    under half what they move the whole mix's (measured: 0.016 against 0.052)."""
    clean = chord((261.6, 329.6, 392.0), 4.0)
    noisy = clean.copy()
    burst = int(0.08 * SR)
    decay = np.exp(-np.arange(burst) / (0.02 * SR))
    rng = np.random.default_rng(1)
    for start in np.arange(0.1, 3.9, 0.25):  # sixteenth notes of snare-like noise at 60 BPM
        i = int(start * SR)
        noisy[i: i + burst] += (rng.uniform(-1, 1, burst) * decay).astype(np.float32)
    middle = slice(round(0.8 * SR / HOP), round(3.2 * SR / HOP))

    def chroma_change() -> float:
        clean_chroma, noisy_chroma = (analyse(y)[1][middle, COL_CHROMA].mean(axis=0) for y in (clean, noisy))
        assert set(np.argsort(noisy_chroma)[-3:]) == {0, 4, 7}  # C, E, G
        return np.abs(noisy_chroma / noisy_chroma.max() - clean_chroma / clean_chroma.max()).max()

    change = chroma_change()
    monkeypatch.setattr(hpss, "soft_masks", whole_mix)
    assert change < 0.03 and change < 0.5 * chroma_change()


def test_long_window_bins_pool_into_semitones_above_125_hz():
    freqs = np.fft.rfftfreq(LONG_FFT, 1.0 / SR)
    starts, pitch = log_frequency_bands(freqs)
    low = freqs[starts] < SEMITONES_FROM_HZ
    assert np.all(np.diff(starts[low]) == 1) and np.all(np.isnan(pitch[low]))  # single bins below
    semitones = pitch[~low]
    assert np.all(np.diff(semitones) == 1) and semitones[-1] == 131  # one band per semitone up to 16 kHz
    a4 = np.flatnonzero(pitch == 69)[0]
    bins = freqs[starts[a4]: starts[a4 + 1]]  # A4's band: every bin within half a semitone of 440 Hz
    assert bins.min() >= 440 * 2 ** (-1 / 24) and bins.max() < 440 * 2 ** (1 / 24) and bins.min() < 440 < bins.max()
