"""Harmonic/percussive separation (backend/audio/hpss.py): the medians are exact, a sustained line
goes to the harmonic mask and a hit to the percussive one, and the two masks share every bin."""

import numpy as np
import scipy.ndimage

from backend.audio import hpss


def test_the_medians_equal_numpys_and_scipys():
    rng = np.random.default_rng(0)
    power = rng.random((300, 40)).astype(np.float32)
    power[100:104] = 3.0  # ties and runs of equal values take the same path as any other
    power[:, 7] = 0.5
    time_median = hpss._time_median(power, hpss.HALF_HOPS, hpss.STRIDE)
    expected = np.stack([np.median(power[j: j + 2 * hpss.HALF_HOPS + 1: hpss.STRIDE], axis=0)
                         for j in range(len(power) - 2 * hpss.HALF_HOPS)])
    np.testing.assert_array_equal(time_median, expected)
    freq_median = hpss._freq_median(power, 8)
    np.testing.assert_array_equal(freq_median, scipy.ndimage.median_filter(power, size=(1, 17), mode="reflect"))


def test_a_sustained_line_is_harmonic_and_a_hit_is_percussive():
    hops, bins = 2 * hpss.HALF_HOPS + 60, 64
    power = np.full((hops, bins), 1e-4, np.float32)
    power[:, 20] = 1.0  # a held note: one bin, every hop
    hit = hpss.HALF_HOPS + 30
    power[hit: hit + 2] = 1.0  # a hit: every bin, two hops
    harmonic, percussive = hpss.soft_masks(power, 8)
    assert harmonic.shape == (60, bins)
    inside = hit - hpss.HALF_HOPS
    assert np.delete(harmonic[:, 20], [inside, inside + 1]).min() > 0.99  # the note
    assert harmonic[inside: inside + 2, 20].min() == 0.5  # under the hit it is as much one part as the other
    assert percussive[inside, np.arange(bins) != 20].min() > 0.99
    np.testing.assert_allclose(harmonic + percussive, 1.0, atol=1e-6)


def test_silence_has_neither_part():
    harmonic, percussive = hpss.soft_masks(np.zeros((2 * hpss.HALF_HOPS + 5, 16), np.float32), 4)
    assert not harmonic.any() and not percussive.any()
