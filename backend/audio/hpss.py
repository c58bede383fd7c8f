"""Harmonic/percussive separation by median filtering (Fitzgerald 2010, the method of librosa's HPSS).

In a spectrogram, sustained notes are horizontal lines and hits are vertical ones. A median along
time keeps the first and drops the second (the *harmonic* estimate H); a median along frequency
does the opposite (the *percussive* estimate P). Wiener-style soft masks ``H / (H + P)`` and
``P / (H + P)`` (on power, i.e. librosa's ``power=2`` on magnitudes) then split every bin.

Here the masks are computed on the analyser's own per-hop power spectra (5 ms hops), streamed:
the time median reaches ``HALF_HOPS`` either side, sampling every ``STRIDE``-th hop, so a hop's
masks need that much look-ahead and the analyser delays its output by as much.
"""

from __future__ import annotations

import numba
import numpy as np

HALF_HOPS = 40  # the time median spans +-200 ms: a hit (a few ms, smeared over at most 128 ms) is a minority
STRIDE = 8  # ... sampled every 40 ms: 11 taps, a tenth of the cost of every hop and the same median


def soft_masks(power: np.ndarray, freq_half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic, percussive) masks for rows ``HALF_HOPS .. len - HALF_HOPS`` of ``power`` (hops, bins).

    The two masks sum to 1 wherever there is any power; both are 0 in digital silence.
    """
    power = np.ascontiguousarray(power, dtype=np.float32)
    harmonic = _time_median(power, HALF_HOPS, STRIDE)
    percussive = _freq_median(power[HALF_HOPS: len(power) - HALF_HOPS], freq_half_width)
    total = harmonic + percussive
    safe = np.where(total > 0, total, 1.0)
    return (np.where(total > 0, harmonic / safe, 0.0).astype(np.float32),
            np.where(total > 0, percussive / safe, 0.0).astype(np.float32))


@numba.njit(cache=True)
def _running_median(series, taps, out, out_start, out_step):  # pragma: no cover - compiled
    """out[out_start + k * out_step] = median of series[k : k + taps] for every k (taps odd).

    The window is kept sorted: each step replaces the value leaving it with the one entering and
    moves that one to its place, so a step costs a few comparisons, not a sort.
    """
    window = np.sort(series[:taps])
    middle = taps // 2
    for k in range(len(series) - taps + 1):
        if k > 0:
            leaving, entering = series[k - 1], series[k + taps - 1]
            lo, hi = 0, taps - 1  # binary search for the leaving value
            while lo < hi:
                mid = (lo + hi) // 2
                if window[mid] < leaving:
                    lo = mid + 1
                else:
                    hi = mid
            p = lo
            while p > 0 and window[p - 1] > entering:
                window[p] = window[p - 1]
                p -= 1
            while p < taps - 1 and window[p + 1] < entering:
                window[p] = window[p + 1]
                p += 1
            window[p] = entering
        out[out_start + k * out_step] = window[middle]


@numba.njit(cache=True)
def _time_median(power, half, stride):  # pragma: no cover - compiled
    """Per bin, the median of rows j - half, j - half + stride, ..., j + half for each row j inside."""
    n, bins = power.shape
    taps = 2 * (half // stride) + 1
    m = max(n - 2 * half, 0)
    out = np.empty((bins, m), np.float32)
    columns = np.ascontiguousarray(power.T)
    for b in range(bins):
        for r in range(min(stride, m)):  # rows r, r + stride, ... share their windows' taps
            series = columns[b, r::stride]
            count = (m - 1 - r) // stride + 1  # outputs r, r + stride, ... below m
            _running_median(series[: count + taps - 1], taps, out[b], r, stride)
    return out.T.copy()


@numba.njit(cache=True)
def _freq_median(power, half_width):  # pragma: no cover - compiled
    """Per row, the median over bins b - half_width .. b + half_width, the row reflected at its edges."""
    n, bins = power.shape
    width = 2 * half_width + 1
    index = np.empty(bins + 2 * half_width, np.int64)  # scipy's "reflect": d c b a | a b c d | d c b a
    for i in range(len(index)):
        k = i - half_width
        while k < 0 or k >= bins:
            k = -k - 1 if k < 0 else 2 * bins - 1 - k
        index[i] = k
    out = np.empty((n, bins), np.float32)
    padded = np.empty(len(index), np.float32)
    for j in range(n):
        for i in range(len(index)):
            padded[i] = power[j, index[i]]
        _running_median(padded, width, out[j], 0, 1)
    return out
