"""Tempo and beats from the onset envelope, and the per-frame beat features built on them.

The tempo comes from librosa's autocorrelation tempogram with its log-normal prior, averaged
over the track in chunks (a 3-hour envelope never becomes one giant tempogram); librosa's dynamic
programming beat tracker then places beats on the fine 5 ms envelope, and the tempo reported is
refined from the beat intervals (the tempogram's lag grid alone is a few BPM coarse).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

TEMPO_DECIMATION = 4  # the tempogram runs on 20 ms hops, like librosa's default 23 ms
TEMPOGRAM_SECONDS = 8.0  # autocorrelation window (librosa's ac_size)
_CHUNK_FRAMES = 3000  # tempogram columns per chunk: 60 s, ~10 MB
WEAK_BEAT_FRACTION = 0.25  # leading/trailing beats weaker than this share of the median beat are dropped
MIN_BEAT_FLUX = 0.02  # ... and weaker than a click at about -45 dBFS: a steady tone has no beat
MIN_STRONG_BEATS = 3  # a grid needs at least this many real hits ...
MIN_STRONG_SHARE = 0.25  # ... making up this share of its beats (a tone's start and end are not a beat)
DOUBLE_TIME_RATIO = 0.8  # hits between the beats this strong mean the tracker locked to half the tempo
MAX_DOUBLED_BPM = 200.0  # never double past this


@dataclass
class BeatGrid:
    tempo: float  # global BPM; 0.0 when no beat was found
    beat_times: np.ndarray  # float64 seconds


def track_beats(envelope: np.ndarray, *, hop_rate: int, start_bpm: float = 120.0, delay_s: float = 0.0) -> BeatGrid:
    """Beats of an onset envelope (n,) whose sample j describes time ``j / hop_rate + delay_s``."""
    envelope = np.asarray(envelope, dtype=np.float64)
    if len(envelope) < 2 or not np.any(envelope > 0):
        return BeatGrid(0.0, np.zeros(0))
    coarse = estimate_tempo(envelope, hop_rate=hop_rate, start_bpm=start_bpm)
    reach = max(1, hop_rate // 100)
    frames = _track(envelope, hop_rate=hop_rate, bpm=coarse, reach=reach)
    # For an even pulse the tempogram's prior barely prefers T over 2T (85 vs 170 BPM are equally
    # far from 120 on its log scale): hits as strong halfway between the beats settle it.
    if 2 * coarse <= MAX_DOUBLED_BPM and _offbeat_ratio(frames, envelope, reach=reach) >= DOUBLE_TIME_RATIO:
        frames = _track(envelope, hop_rate=hop_rate, bpm=2 * coarse, reach=reach)
    beats = frames / hop_rate + delay_s
    if len(beats) < 2:
        return BeatGrid(0.0, np.zeros(0))
    return BeatGrid(float(60.0 / np.median(_spans(beats))), beats)


def _track(envelope: np.ndarray, *, hop_rate: int, bpm: float, reach: int) -> np.ndarray:
    """Beat positions (envelope samples) from librosa's dynamic programme at about ``bpm``."""
    import librosa

    # librosa's dynamic programme forces a badly fitting predecessor on a beat closer to the start
    # than one period, pulling the first beat early; two periods of silence either side avoid it.
    # Its own trimming drops a band's first downbeat after a quieter intro: _trim_weak replaces it.
    pad = int(np.ceil(2 * 60.0 / bpm * hop_rate)) + 1
    padded = np.concatenate([np.zeros(pad), envelope, np.zeros(pad)])
    _, frames = librosa.beat.beat_track(onset_envelope=padded, sr=hop_rate, hop_length=1, bpm=bpm,
                                        trim=False)
    frames = np.asarray(frames, dtype=np.int64) - pad
    frames = frames[(frames >= 0) & (frames < len(envelope))]
    return _trim_weak(frames, envelope, reach=reach)


def _peak(envelope: np.ndarray, frames: np.ndarray, reach: int) -> np.ndarray:
    """The envelope's peak within ``reach`` samples of each frame."""
    return np.array([envelope[max(0, f - reach): f + reach + 1].max() for f in frames])


def _offbeat_ratio(frames: np.ndarray, envelope: np.ndarray, *, reach: int) -> float:
    """Median onset halfway between beats over the median onset on them (0 when there are too few)."""
    if len(frames) < 4:
        return 0.0
    on = np.median(_peak(envelope, frames, reach))
    off = np.median(_peak(envelope, (frames[:-1] + frames[1:]) // 2, reach))
    return float(off / on) if on > 0 else 0.0


def _trim_weak(frames: np.ndarray, envelope: np.ndarray, *, reach: int) -> np.ndarray:
    """Drop leading and trailing beats whose onset (peak within ``reach`` samples) is weaker than
    a quarter of the median beat's, or than MIN_BEAT_FLUX; beats between strong ones stay (a
    breakdown keeps its grid). Too few strong beats (a tone's start and end) means no beat at all."""
    if len(frames) == 0:
        return frames
    strength = _peak(envelope, frames, reach)
    strong = np.flatnonzero(strength >= max(WEAK_BEAT_FRACTION * np.median(strength), MIN_BEAT_FLUX))
    if len(strong) < MIN_STRONG_BEATS:
        return frames[:0]
    kept = frames[strong[0]: strong[-1] + 1]
    if len(strong) < MIN_STRONG_SHARE * len(kept):
        return frames[:0]
    return kept


def _spans(beats: np.ndarray) -> np.ndarray:
    """Beat period around each beat, averaged over up to four intervals (n,) seconds.

    Averaging over a bar cancels the few-ms alternation between differently shaped hits (a kick
    alone, a kick with a snare) that would otherwise bias a median of single intervals.
    """
    n = len(beats)
    k = np.arange(n)
    lo, hi = np.maximum(k - 2, 0), np.minimum(k + 2, n - 1)
    return (beats[hi] - beats[lo]) / (hi - lo)


def estimate_tempo(envelope: np.ndarray, *, hop_rate: int, start_bpm: float = 120.0) -> float:
    """Global tempo (BPM) from the track's mean tempogram, computed chunk by chunk."""
    import librosa

    n = len(envelope) // TEMPO_DECIMATION
    coarse = envelope[: n * TEMPO_DECIMATION].reshape(n, TEMPO_DECIMATION).mean(axis=1)
    coarse_rate = hop_rate / TEMPO_DECIMATION
    win = int(round(TEMPOGRAM_SECONDS * coarse_rate))
    half = win // 2
    # librosa pads the whole envelope with a linear ramp; pad once, then slice chunks with context.
    padded = np.pad(coarse, half, mode="linear_ramp", end_values=0)
    total = np.zeros(win)
    for first in range(0, n, _CHUNK_FRAMES):
        stop = min(n, first + _CHUNK_FRAMES)
        piece = padded[first: stop + 2 * half]  # frames first..stop-1 with half a window each side
        tg = librosa.feature.tempogram(onset_envelope=piece, sr=coarse_rate, hop_length=1,
                                       win_length=win, center=False)
        total += tg[:, : stop - first].sum(axis=1)
    mean_tg = total[:, None] / max(1, n)
    tempo = librosa.feature.tempo(tg=mean_tg, sr=coarse_rate, hop_length=1, start_bpm=start_bpm,
                                  aggregate=None)
    return float(tempo[0])


def beat_features(grid: BeatGrid, times: np.ndarray, fps: Fraction, *,
                  pulse_decay_s: float) -> dict[str, np.ndarray]:
    """Per-frame ``beat_pulse``, ``beat_phase`` (0..1), ``tempo`` (local BPM) at frame ``times``.

    The pulse is 1 on the frame nearest each beat and decays as exp(-dt / pulse_decay_s). The
    phase runs 0 -> 1 between consecutive beats and is extrapolated with the global tempo before
    the first and after the last. With no beats every series is zero.
    """
    n = len(times)
    beats = grid.beat_times
    if len(beats) == 0 or grid.tempo <= 0:
        zeros = np.zeros(n)
        return {"beat_pulse": zeros, "beat_phase": zeros.copy(), "tempo": zeros.copy()}
    rate = fps.numerator / fps.denominator
    beat_frames = np.unique(np.rint(beats * rate).astype(np.int64))  # 0-based frame of each beat
    frame = np.arange(n)
    last = np.searchsorted(beat_frames, frame, side="right") - 1
    since = (frame - beat_frames[np.maximum(last, 0)]) / rate  # seconds since the beat's frame
    pulse = np.where(last >= 0, np.exp(-since / pulse_decay_s) if pulse_decay_s > 0 else since == 0, 0.0)

    period = 60.0 / grid.tempo
    position = np.interp(times, beats, np.arange(len(beats), dtype=np.float64))  # beats counted
    before, after = times < beats[0], times > beats[-1]
    position[before] = (times[before] - beats[0]) / period
    position[after] = len(beats) - 1 + (times[after] - beats[-1]) / period
    phase = np.mod(position, 1.0)

    if len(beats) >= 2:
        local = 60.0 / np.interp(times, beats, _spans(beats))  # constant beyond the first/last beat
    else:
        local = np.full(n, grid.tempo)
    return {"beat_pulse": pulse.astype(np.float64), "beat_phase": phase, "tempo": local}
