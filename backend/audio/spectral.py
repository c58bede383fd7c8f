"""Per-hop spectral measurements of a mono stream, computed block by block, and their per-frame reduction.

Everything runs at :data:`ANALYSIS_RATE` (32 kHz: the treble band reaches 16 kHz) on a 5 ms hop,
well below a 60 fps frame (16.7 ms). Two windows share each hop centre:

* a short 16 ms window for onsets (log-compressed spectral flux) and RMS — sharp in time;
* a long 128 ms window for band energies, chroma and the spectral centroid — its 7.8 Hz bins keep a
  40 Hz tone clear of the 60 Hz sub/bass edge.

Drums apart from harmony: both spectra are split into a harmonic and a percussive part
(:mod:`backend.audio.hpss`). Onsets (and so the beat) are the flux of the *percussive* part of the
short window, so a pad's swell or a chord change is not a hit; chroma and the centroid read the
*harmonic* part of the long window, so a snare does not tint the chord. Band energies and RMS stay
the whole mix. The long window's HPSS runs on a log-frequency spectrogram — one band per semitone
above 125 Hz, single bins below (a CQT's resolution, pooled from the STFT already taken; Müller,
FMP 3.1) — which also gives chroma its pitch grid: each semitone counts for its pitch class.

:class:`HopAnalyzer` keeps only one long window of samples (plus the separation's look-ahead)
between blocks, so memory does not grow with the file; :class:`FrameMeans` turns hop rows into
per-frame means as soon as a frame's window is complete. Frame ``i`` covers the hops whose
centres lie in ``[(i - 1/2) / fps, (i + 1/2) / fps)``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.fft

from backend.audio import hpss
from backend.audio.names import BAND_EDGES_HZ, BANDS

ANALYSIS_RATE = 32000  # Hz
HOP = 160  # samples: 5 ms
HOP_RATE = ANALYSIS_RATE // HOP  # hops per second, exactly 200
ONSET_FFT = 512  # 16 ms
LONG_FFT = 4096  # 128 ms
ONSET_LOG_GAIN = 100.0  # log(1 + gain * amplitude): compresses loud and quiet hits alike
# The log flux of a hit peaks as the hit enters the short window: measured on clicks, noise bursts
# and kicks at every sub-hop phase, 1-2 ms before the hit (range -4.6..+1.7 ms). Onset hops are
# therefore read as 2 ms later than their centre when they are assigned to frames and beats.
ONSET_DELAY_SAMPLES = 64  # 2 ms at ANALYSIS_RATE
# Bins below ~100 Hz (0 and 62.5 Hz) are left out of the flux: a 16 ms window holds less than two
# periods of a sub-bass note, so a steady bass tone would flicker there; hits are broadband anyway.
ONSET_FIRST_BIN = 2
CENTROID_RANGE_HZ = (20.0, 16000.0)
# Below ~125 Hz a semitone is narrower than the long window's 7.8 Hz bins, so a bass note smears over
# neighbouring pitch classes and drowns the harmony above it: bins are pooled per semitone only above
# this, and chroma reads only those semitones.
SEMITONES_FROM_HZ = 125.0
CHROMA_CENTRE_HZ, CHROMA_OCTAVE_WIDTH = 880.0, 2.0  # chroma weighs octaves as librosa's chroma_stft does
SHORT_FREQ_MEDIAN = 8  # the percussive estimate for onsets: median over +-8 short bins (+-500 Hz)
LONG_FREQ_MEDIAN = 8  # ... and over +-8 log-frequency bands (about +-8 semitones)

# Columns of a level row: band powers and mean square (whole mix), chroma energies (harmonic),
# harmonic and percussive mean squares (long window), centroid denominator/numerator (harmonic).
COL_BANDS = slice(0, len(BANDS))
COL_MS = len(BANDS)
COL_CHROMA = slice(COL_MS + 1, COL_MS + 13)
COL_HARMONIC = COL_MS + 13
COL_PERCUSSIVE = COL_MS + 14
COL_POWER = COL_MS + 15
COL_FREQ_POWER = COL_MS + 16
N_LEVEL_COLUMNS = COL_MS + 17
_CHUNK_HOPS = 1024  # hops per FFT batch: bounds the framed copy to ~16 MB
_CONTEXT = hpss.HALF_HOPS + 1  # hops computed before a chunk: the separation's reach, and the flux's previous hop


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (as librosa's STFT uses), float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _power_scale(window: np.ndarray) -> np.ndarray:
    """Per-bin factors so that summing ``|rfft(x * w)|**2 * scale`` gives the mean square of x."""
    n = len(window)
    scale = np.full(n // 2 + 1, 2.0 / (n * np.sum(window**2)))
    scale[0] /= 2
    scale[-1] /= 2
    return scale.astype(np.float32)


def log_frequency_bands(freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooling of rfft bins (ascending ``freqs``) into bands: single bins below SEMITONES_FROM_HZ, one
    band per semitone above. Returns each band's first bin and its MIDI pitch (NaN for single bins)."""
    with np.errstate(divide="ignore"):
        pitch = np.rint(69 + 12 * np.log2(freqs / 440.0))
    key = np.where(freqs < SEMITONES_FROM_HZ, -1.0 - np.arange(len(freqs)), pitch)  # unique below the split
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return starts, np.where(freqs[starts] < SEMITONES_FROM_HZ, np.nan, pitch[starts])


class HopAnalyzer:
    """Streaming per-hop measurements; hop ``j`` is centred on sample ``j * HOP`` (zero-padded start).

    ``push(samples)`` takes mono float32 blocks at ANALYSIS_RATE and returns the hops now complete,
    in whole chunks of ``_CHUNK_HOPS`` (5 s; a hop also waits for the separation's 200 ms of
    look-ahead), so any blocks give the very same numbers; ``finish()`` pads the end with zeros and
    returns the rest, ``1 + n_samples // HOP`` hops in all. Each return is
    ``(onset_flux (m,), levels (m, N_LEVEL_COLUMNS))``; the flux is the percussive part's.
    """

    def __init__(self):
        self.long_window = _hann(LONG_FFT)
        self.short_window = _hann(ONSET_FFT)
        self.short_scale = _power_scale(self.short_window)
        self.long_scale = _power_scale(self.long_window)
        # Short-window magnitudes scaled so a sine of amplitude A peaks at A.
        self.short_amplitude = np.float32(2.0 / self.short_window.sum())
        freqs = np.fft.rfftfreq(LONG_FFT, 1.0 / ANALYSIS_RATE)
        self.band_matrix = np.array([((freqs >= lo) & (freqs < hi)) for lo, hi in
                                     (BAND_EDGES_HZ[b] for b in BANDS)], np.float32).T  # (bins, 5)
        self.freqs = freqs.astype(np.float32)
        self.pool_starts, pitch = log_frequency_bands(freqs)
        centre = np.add.reduceat(freqs, self.pool_starts) / np.diff(np.r_[self.pool_starts, len(freqs)])
        self.in_centroid_range = ((centre >= CENTROID_RANGE_HZ[0]) & (centre <= CENTROID_RANGE_HZ[1])).astype(np.float32)
        fold = np.zeros((len(pitch), 12), np.float32)
        pitched = np.flatnonzero(np.isfinite(pitch))
        octaves = np.log2(centre[pitched] / CHROMA_CENTRE_HZ)
        fold[pitched, pitch[pitched].astype(np.int64) % 12] = np.exp(-0.5 * (octaves / CHROMA_OCTAVE_WIDTH) ** 2)
        self.chroma_fold = fold  # (bands, 12): C first, as MIDI pitch 60 is C
        half = LONG_FFT // 2
        pad = half + _CONTEXT * HOP  # zeros before sample 0: the first hops' windows and look-back
        self._buffer = np.zeros(pad, np.float32)
        self._buffer_start = -pad  # absolute index of _buffer[0]
        self._next_hop = 0
        self._n_input = 0

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._n_input += len(samples)
        self._buffer = np.concatenate([self._buffer, samples])
        # Hop j is complete when the long window of hop j + HALF_HOPS ends inside the buffer.
        available_end = self._buffer_start + len(self._buffer)
        last = (available_end - LONG_FFT // 2) // HOP - hpss.HALF_HOPS
        return self._compute(last + 1)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        tail = LONG_FFT // 2 + (hpss.HALF_HOPS + 1) * HOP
        self._buffer = np.concatenate([self._buffer, np.zeros(tail, np.float32)])
        return self._compute(1 + self._n_input // HOP, final=True)

    def _compute(self, stop_hop: int, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if not final:  # whole chunks only, so every hop is computed in the same batch (float32 matrix
            stop_hop -= stop_hop % _CHUNK_HOPS  # products round by batch) whatever blocks came in
        onsets, levels = [], []
        while self._next_hop < stop_hop:
            count = min(_CHUNK_HOPS, stop_hop - self._next_hop)
            onset, level = self._measure(self._next_hop, count)
            onsets.append(onset)
            levels.append(level)
            self._next_hop += count
        # Keep only what the next hop's window and its context need.
        keep_from = (self._next_hop - _CONTEXT) * HOP - LONG_FFT // 2 - self._buffer_start
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._buffer_start += keep_from
        if not onsets:
            return np.zeros(0, np.float32), np.zeros((0, N_LEVEL_COLUMNS), np.float32)
        return np.concatenate(onsets), np.concatenate(levels)

    def _measure(self, first_hop: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Hops first_hop .. first_hop + count - 1, from the spectra of hops reaching _CONTEXT before
        and HALF_HOPS after them (the separation's medians and the flux's previous hop)."""
        half = hpss.HALF_HOPS
        rows = count + _CONTEXT + half
        start = (first_hop - _CONTEXT) * HOP - LONG_FFT // 2 - self._buffer_start
        view = np.lib.stride_tricks.sliding_window_view(self._buffer, LONG_FFT)
        frames = view[start: start + (rows - 1) * HOP + 1: HOP]  # (rows, LONG_FFT), no copy yet
        offset = (LONG_FFT - ONSET_FFT) // 2
        short = scipy.fft.rfft(frames[:, offset: offset + ONSET_FFT] * self.short_window, axis=1)
        short_power = short.real**2 + short.imag**2  # (rows, 257)
        # Short window: masks for the previous hop and ours -> the percussive part's log flux.
        _, hits = hpss.soft_masks(short_power, SHORT_FREQ_MEDIAN)  # (count + 1, 257)
        inside = short_power[half: half + count + 1]
        log_magnitude = np.log1p(ONSET_LOG_GAIN * self.short_amplitude * hits * np.sqrt(inside))
        flux = np.maximum(np.diff(log_magnitude, axis=0), 0.0)[:, ONSET_FIRST_BIN:].mean(axis=1)  # (count,)

        spectrum = scipy.fft.rfft(frames[1:] * self.long_window, axis=1)  # (count + 2 half, 2049)
        long_power = (spectrum.real**2 + spectrum.imag**2) * self.long_scale
        pooled = np.add.reduceat(long_power, self.pool_starts, axis=1)  # log-frequency bands
        # The parts' loudness is read here, where a pad's close partials are resolved (in the short
        # window's 62.5 Hz bins they blur into a band the frequency median takes for a hit).
        tonal, atonal = hpss.soft_masks(pooled, LONG_FREQ_MEDIAN)  # (count, bands)
        long_inside = long_power[half: half + count]
        pooled_inside = pooled[half: half + count]
        tonal_power = tonal**2 * pooled_inside
        tonal_freq_power = tonal**2 * np.add.reduceat(long_inside * self.freqs, self.pool_starts, axis=1)

        level = np.empty((count, N_LEVEL_COLUMNS), np.float32)
        level[:, COL_BANDS] = long_inside @ self.band_matrix
        level[:, COL_MS] = inside[1:] @ self.short_scale
        level[:, COL_CHROMA] = tonal_power @ self.chroma_fold
        level[:, COL_HARMONIC] = tonal_power.sum(axis=1)
        level[:, COL_PERCUSSIVE] = (atonal**2 * pooled_inside).sum(axis=1)
        level[:, COL_POWER] = tonal_power @ self.in_centroid_range
        level[:, COL_FREQ_POWER] = tonal_freq_power @ self.in_centroid_range
        return flux.astype(np.float32), level


def frame_window_hops(first_frame: int, stop_frame: int, fps: Fraction,
                      offset_samples: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hop index ranges ``[start, end)`` of frames ``first_frame .. stop_frame - 1`` (0-based).

    Exact integer arithmetic: hop j, read as time ``p = (j * HOP + offset_samples) / ANALYSIS_RATE``,
    belongs to frame i iff (i - 1/2)/fps <= p < (i + 1/2)/fps.
    """
    i = np.arange(first_frame, stop_frame, dtype=np.int64)
    num, den = fps.numerator, fps.denominator
    shift = 2 * num * offset_samples
    step = 2 * num * HOP
    start = -((shift - (2 * i - 1) * ANALYSIS_RATE * den) // step)  # ceil division
    end = -((shift - (2 * i + 1) * ANALYSIS_RATE * den) // step)
    return np.maximum(start, 0), end


def window_max(values: np.ndarray, fps: Fraction, n_frames: int, offset_samples: int = 0) -> np.ndarray:
    """Per-frame maximum of a per-hop series (n_hops,) -> (n_frames,); frames past the end use the last hop."""
    start, end = frame_window_hops(0, n_frames, fps, offset_samples)
    n = len(values)
    start = np.minimum(start, n - 1)
    end = np.clip(end, start + 1, n)
    padded = np.concatenate([values, values[-1:]])  # reduceat needs a valid index after the last window
    out = np.maximum.reduceat(padded, np.stack([start, end], axis=1).reshape(-1))[::2]
    return out.astype(values.dtype)


class FrameMeans:
    """Streams per-hop rows in, per-frame means out, keeping only the rows of unfinished frames."""

    def __init__(self, fps: Fraction, n_columns: int):
        self.fps = fps
        self._rows = np.zeros((0, n_columns), np.float64)
        self._rows_start = 0  # hop index of _rows[0]
        self._next_frame = 0

    def push(self, rows: np.ndarray) -> np.ndarray:
        self._rows = np.concatenate([self._rows, rows.astype(np.float64)])
        n_hops = self._rows_start + len(self._rows)
        num, den = self.fps.numerator, self.fps.denominator
        # Frames whose window ends at or before n_hops are complete.
        last = (2 * n_hops * num - HOP_RATE * den) // (2 * HOP_RATE * den)
        return self._reduce(self._next_frame, last + 1, n_hops)

    def finish(self, n_frames: int) -> np.ndarray:
        return self._reduce(self._next_frame, n_frames, self._rows_start + len(self._rows))

    def _reduce(self, first: int, stop: int, n_hops: int) -> np.ndarray:
        if stop <= first or n_hops == 0:
            return np.zeros((0, self._rows.shape[1]), np.float64)
        start, end = frame_window_hops(first, stop, self.fps)
        start = np.minimum(start, n_hops - 1)  # frames past the last hop repeat it
        end = np.clip(end, start + 1, n_hops)
        local_start, local_end = start - self._rows_start, end - self._rows_start
        # Each frame's own rows summed (not differences of a running sum, whose rounding depends on
        # how the rows arrived): the means are the same bits however the stream was cut.
        padded = np.vstack([self._rows, np.zeros((1, self._rows.shape[1]))])  # reduceat reads one past the end
        sums = np.add.reduceat(padded, np.stack([local_start, local_end], axis=1).reshape(-1), axis=0)[::2]
        means = sums / (local_end - local_start)[:, None]
        self._next_frame = stop
        drop = int(end[-1]) - self._rows_start
        self._rows = self._rows[drop:]
        self._rows_start += drop
        return means
