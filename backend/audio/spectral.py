"""Per-hop spectral measurements of a mono stream, computed block by block, and their per-frame reduction.

Everything runs at :data:`ANALYSIS_RATE` (32 kHz: the treble band reaches 16 kHz) on a 5 ms hop,
well below a 60 fps frame (16.7 ms). Two windows share each hop centre:

* a short 16 ms window for onsets (log-compressed spectral flux) and RMS — sharp in time;
* a long 128 ms window for band energies, chroma and the spectral centroid — its 7.8 Hz bins keep a
  40 Hz tone clear of the 60 Hz sub/bass edge.

:class:`HopAnalyzer` keeps only one long window of samples between blocks, so memory does not grow
with the file; :class:`FrameMeans` turns hop rows into per-frame means as soon as a frame's window
is complete. Frame ``i`` covers the hops whose centres lie in ``[(i - 1/2) / fps, (i + 1/2) / fps)``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.fft

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
# Below ~120 Hz a semitone is narrower than the long window's 7.8 Hz bins, so a bass note smears over
# neighbouring pitch classes and drowns the harmony above it; chroma reads only what lies higher.
CHROMA_MIN_HZ = 120.0

# Columns of a level row: band powers, mean square, chroma energies, centroid denominator/numerator.
COL_BANDS = slice(0, len(BANDS))
COL_MS = len(BANDS)
COL_CHROMA = slice(COL_MS + 1, COL_MS + 13)
COL_POWER = COL_MS + 13
COL_FREQ_POWER = COL_MS + 14
N_LEVEL_COLUMNS = COL_MS + 15
_CHUNK_HOPS = 1024  # hops per FFT batch: bounds the framed copy to ~16 MB


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


class HopAnalyzer:
    """Streaming per-hop measurements; hop ``j`` is centred on sample ``j * HOP`` (zero-padded start).

    ``push(samples)`` takes mono float32 blocks at ANALYSIS_RATE and returns the hops now complete;
    ``finish()`` pads the end with zeros and returns the rest, ``1 + n_samples // HOP`` hops in all.
    Each return is ``(onset_flux (m,), levels (m, N_LEVEL_COLUMNS))``.
    """

    def __init__(self):
        import librosa

        self.long_window = _hann(LONG_FFT)
        self.short_window = _hann(ONSET_FFT)
        self.short_scale = _power_scale(self.short_window)
        # Short-window magnitudes scaled so a sine of amplitude A peaks at A.
        self.short_amplitude = np.float32(2.0 / self.short_window.sum())
        freqs = np.fft.rfftfreq(LONG_FFT, 1.0 / ANALYSIS_RATE)
        bands = [((freqs >= lo) & (freqs < hi)) for lo, hi in (BAND_EDGES_HZ[b] for b in BANDS)]
        chroma = librosa.filters.chroma(sr=ANALYSIS_RATE, n_fft=LONG_FFT) * (freqs >= CHROMA_MIN_HZ)
        in_range = (freqs >= CENTROID_RANGE_HZ[0]) & (freqs <= CENTROID_RANGE_HZ[1])
        rows = np.vstack([np.array(bands), chroma, in_range, in_range * freqs])  # (19, bins)
        # One matrix from squared (re, im) pairs to every long-window level, power scale folded in.
        self.long_matrix = np.repeat((rows * _power_scale(self.long_window)).T, 2, axis=0).astype(np.float32)
        half = LONG_FFT // 2
        self._buffer = np.zeros(half, np.float32)  # the zero padding before sample 0
        self._buffer_start = -half  # absolute index of _buffer[0]
        self._next_hop = 0
        self._n_input = 0
        self._previous_log_magnitude = np.zeros(ONSET_FFT // 2 + 1, np.float32)

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._n_input += len(samples)
        self._buffer = np.concatenate([self._buffer, samples])
        # Hop j is complete when its long window ends inside the buffer.
        available_end = self._buffer_start + len(self._buffer)
        last = (available_end - LONG_FFT // 2) // HOP  # largest j with j*HOP + half <= end
        return self._compute(last + 1)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._buffer = np.concatenate([self._buffer, np.zeros(LONG_FFT // 2 + HOP, np.float32)])
        return self._compute(1 + self._n_input // HOP)

    def _compute(self, stop_hop: int) -> tuple[np.ndarray, np.ndarray]:
        onsets, levels = [], []
        while self._next_hop < stop_hop:
            count = min(_CHUNK_HOPS, stop_hop - self._next_hop)
            onset, level = self._measure(self._next_hop, count)
            onsets.append(onset)
            levels.append(level)
            self._next_hop += count
        # Keep only what the next hop's window needs.
        keep_from = self._next_hop * HOP - LONG_FFT // 2 - self._buffer_start
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._buffer_start += keep_from
        if not onsets:
            return np.zeros(0, np.float32), np.zeros((0, N_LEVEL_COLUMNS), np.float32)
        return np.concatenate(onsets), np.concatenate(levels)

    def _measure(self, first_hop: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        start = first_hop * HOP - LONG_FFT // 2 - self._buffer_start
        view = np.lib.stride_tricks.sliding_window_view(self._buffer, LONG_FFT)
        frames = view[start: start + (count - 1) * HOP + 1: HOP]  # (count, LONG_FFT), no copy yet
        offset = (LONG_FFT - ONSET_FFT) // 2
        short = scipy.fft.rfft(frames[:, offset: offset + ONSET_FFT] * self.short_window, axis=1)
        short_power = short.real**2 + short.imag**2  # (count, 257)
        log_magnitude = np.log1p(ONSET_LOG_GAIN * self.short_amplitude * np.sqrt(short_power))
        previous = np.vstack([self._previous_log_magnitude[None], log_magnitude[:-1]])
        flux = np.maximum(log_magnitude - previous, 0.0)[:, ONSET_FIRST_BIN:].mean(axis=1)  # (count,)
        self._previous_log_magnitude = log_magnitude[-1]

        spectrum = scipy.fft.rfft(frames * self.long_window, axis=1)  # (count, 2049) complex64
        squares = spectrum.view(np.float32)  # (count, 4098): re, im, re, im, ...
        np.square(squares, out=squares)
        long_levels = squares @ self.long_matrix  # (count, 19): bands, chroma, power, freq * power
        level = np.empty((count, N_LEVEL_COLUMNS), np.float32)
        level[:, COL_BANDS] = long_levels[:, : len(BANDS)]
        level[:, COL_MS] = short_power @ self.short_scale
        level[:, COL_MS + 1:] = long_levels[:, len(BANDS):]
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
        sums = np.vstack([np.zeros((1, self._rows.shape[1])), np.cumsum(self._rows, axis=0)])
        local_start, local_end = start - self._rows_start, end - self._rows_start
        means = (sums[local_end] - sums[local_start]) / (local_end - local_start)[:, None]
        self._next_frame = stop
        drop = int(end[-1]) - self._rows_start
        self._rows = self._rows[drop:]
        self._rows_start += drop
        return means
