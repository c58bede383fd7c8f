"""Tempo and beats from the onset envelope, and the per-frame beat features built on them.

The beat a dancer feels, following tempo changes:

1. A local tempo curve: an autocorrelation tempogram over 4-second windows (chunked, so a 3-hour
   envelope never becomes one giant tempogram), each column's peak weighted by a log-normal prior
   around ``start_bpm`` and limited to the tempo range, then median-filtered over a few beats.
2. librosa's dynamic-programming beat tracker (Ellis 2007) follows that time-varying tempo on the
   fine 5 ms envelope.
3. Tempo octave, per stretch of eight beats: the beat should carry exactly one level of regular
   subdivision (the eighth notes). Hits as strong halfway between beats as on them, or regular
   hits at the quarter points, mean the tracker found half the felt tempo (a 172 BPM break read as
   86): double there. Nothing halfway between fast beats that alternate strong and weak means it
   found the subdivision (an 87 BPM groove with eighth-note hats read as 174): halve there. Then
   track again. An even pulse keeps its tempo.
4. The reported tempo curve comes from the beat intervals (the tempogram's lag grid is coarse).

User hints replace steps: ``bpm`` fixes the tempo (phase still from the audio), ``tempo_range``
restricts every step, ``beat_times`` (e.g. from a DJ tool) replaces tracking altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

TEMPO_DECIMATION = 4  # the tempogram runs on 20 ms hops, like librosa's default 23 ms
TEMPOGRAM_SECONDS = 4.0  # local autocorrelation window: a tempo change shows within a few beats
TEMPO_MEDIAN_SECONDS = 3.0  # the per-column tempo is median-filtered over this span
PRIOR_OCTAVES = 1.0  # std of the log-normal tempo prior (librosa's default)
DEFAULT_TEMPO_RANGE = (60.0, 200.0)  # BPM searched when the user gives no range
_CHUNK_FRAMES = 3000  # tempogram columns per chunk: 60 s, ~2 MB
WEAK_BEAT_FRACTION = 0.25  # leading/trailing beats weaker than this share of the median beat are dropped
MIN_BEAT_FLUX = 0.02  # ... and weaker than a click at about -45 dBFS: a steady tone has no beat
MIN_STRONG_BEATS = 3  # a grid needs at least this many real hits ...
MIN_STRONG_SHARE = 0.25  # ... making up this share of its beats (a tone's start and end are not a beat)
MIN_BEAT_CONTRAST = 2.5  # beats must stand this far above the flux between them (a pad's swells do not)
OCTAVE_WINDOW_BEATS = 8  # the octave tests look at this many beats around each beat
DOUBLE_TIME_RATIO = 0.8  # hits halfway between beats this strong: the felt beat is twice as fast
QUARTER_RATIO = 0.2  # regular hits this strong (above the floor) at the quarter points: also twice as fast
HALVE_BELOW_RATIO = 0.1  # halfway between beats this empty ...
HALVE_ABOVE_BPM = 140.0  # ... at a tempo above this, with every other beat
ALTERNATION_RATIO = 0.6  # ... weaker than this share of the others: the tracker found the subdivision


@dataclass
class BeatGrid:
    tempo: float  # typical BPM (median of the local tempo at the beats); 0.0 when no beat was found
    beat_times: np.ndarray  # float64 seconds


def track_beats(envelope: np.ndarray, *, hop_rate: int, start_bpm: float = 120.0, delay_s: float = 0.0,
                bpm: float | None = None, tempo_range: tuple[float, float] = DEFAULT_TEMPO_RANGE,
                beat_times: np.ndarray | None = None) -> BeatGrid:
    """Beats of an onset envelope (n,) whose sample j describes time ``j / hop_rate + delay_s``."""
    if beat_times is not None:
        return grid_from_beats(np.asarray(beat_times, dtype=np.float64))
    envelope = np.asarray(envelope, dtype=np.float64)
    if len(envelope) < 2 or not np.any(envelope > 0):
        return BeatGrid(0.0, np.zeros(0))
    reach = max(1, hop_rate // 100)
    if bpm is not None:
        frames = _track(envelope, hop_rate=hop_rate, bpm=np.full(len(envelope), float(bpm)), reach=reach)
    else:
        curve = local_tempo(envelope, hop_rate=hop_rate, start_bpm=start_bpm, tempo_range=tempo_range)
        frames = _track(envelope, hop_rate=hop_rate, bpm=curve, reach=reach)
        factors = _octave_factors(frames, envelope, reach=reach, hop_rate=hop_rate, tempo_range=tempo_range)
        if np.any(factors != 1.0):
            corrected = np.interp(np.arange(len(envelope)), frames, factors * _frame_bpm(frames, hop_rate))
            frames = _track(envelope, hop_rate=hop_rate, bpm=corrected, reach=reach)
    if _contrast(frames, envelope, reach=reach) < MIN_BEAT_CONTRAST:
        frames = frames[:0]  # a grid laid over slow, irregular attacks: no beat is felt
    return grid_from_beats(frames / hop_rate + delay_s)


def grid_from_beats(beats: np.ndarray) -> BeatGrid:
    beats = np.unique(beats[np.isfinite(beats) & (beats >= 0)])
    if len(beats) < 2:
        return BeatGrid(0.0, np.zeros(0))
    return BeatGrid(float(60.0 / np.median(_spans(beats))), beats)


def _track(envelope: np.ndarray, *, hop_rate: int, bpm: np.ndarray, reach: int) -> np.ndarray:
    """Beat positions (envelope samples) from librosa's dynamic programme at the tempo curve ``bpm`` (n,)."""
    import librosa

    # librosa's dynamic programme forces a badly fitting predecessor on a beat closer to the start
    # than one period, pulling the first beat early; two periods of silence either side avoid it.
    # Its own trimming drops a band's first downbeat after a quieter intro: _trim_weak replaces it.
    pad = int(np.ceil(2 * 60.0 / bpm.min() * hop_rate)) + 1
    padded = np.concatenate([np.zeros(pad), envelope, np.zeros(pad)])
    curve = np.concatenate([np.full(pad, bpm[0]), bpm, np.full(pad, bpm[-1])])
    _, frames = librosa.beat.beat_track(onset_envelope=padded, sr=hop_rate, hop_length=1, bpm=curve,
                                        trim=False)
    frames = np.asarray(frames, dtype=np.int64) - pad
    frames = frames[(frames >= 0) & (frames < len(envelope))]
    return _trim_weak(frames, envelope, reach=reach)


def _frame_bpm(frames: np.ndarray, hop_rate: int) -> np.ndarray:
    if len(frames) < 2:
        return np.full(len(frames), 120.0)
    return 60.0 / _spans(frames / hop_rate)


def _peak(envelope: np.ndarray, frames: np.ndarray, reach: int) -> np.ndarray:
    """The envelope's peak within ``reach`` samples of each frame."""
    frames = np.asarray(frames, dtype=np.int64)
    return np.array([envelope[max(0, f - reach): f + reach + 1].max() for f in frames]) if len(frames) else np.zeros(0)


def _floor(frames: np.ndarray, envelope: np.ndarray, reach: int) -> np.ndarray:
    """Per beat interval: the envelope at the sixteenth points, where neither level plays (n - 1,)."""
    gaps = np.diff(frames)
    return np.median([_peak(envelope, frames[:-1] + np.rint(gaps * f).astype(np.int64), reach)
                      for f in (1 / 8, 3 / 8, 5 / 8, 7 / 8)], axis=0)


def _contrast(frames: np.ndarray, envelope: np.ndarray, *, reach: int) -> float:
    """Median onset on the beats over the median floor between them (inf for a silent floor)."""
    if len(frames) < MIN_STRONG_BEATS:
        return 0.0
    floor = float(np.median(_floor(frames, envelope, reach)))
    on = float(np.median(_peak(envelope, frames, reach)))
    return on / floor if floor > 0 else np.inf


def _octave_factors(frames: np.ndarray, envelope: np.ndarray, *, reach: int, hop_rate: int,
                    tempo_range: tuple[float, float]) -> np.ndarray:
    """Per beat: 2 where the felt beat is twice as fast, 0.5 where half as fast, else 1 (step 3 above)."""
    n = len(frames)
    factors = np.ones(n)
    if n < 4:
        return factors
    gaps = np.diff(frames)

    def at(fraction: float) -> np.ndarray:
        return _peak(envelope, frames[:-1] + np.rint(gaps * fraction).astype(np.int64), reach)

    # Sustained notes leave a floor of small flux everywhere: measure hits above it, where nothing
    # is played at either level (the sixteenths between the quarter points).
    floor = _floor(frames, envelope, reach)
    on, half, quarter = _peak(envelope, frames[:-1], reach), at(1 / 2), np.maximum(at(1 / 4), at(3 / 4))
    bpm = _frame_bpm(frames, hop_rate)
    lo, hi = tempo_range
    w = OCTAVE_WINDOW_BEATS // 2
    for k in range(n):
        a, b = max(0, k - w), min(n - 1, k + w)
        base = np.median(floor[a:b])
        strength = np.median(on[a:b]) - base
        if strength <= 0:
            continue
        half_ratio = (np.median(half[a:b]) - base) / strength
        quarter_ratio = (np.median(quarter[a:b]) - base) / strength
        if 2 * bpm[k] <= hi and (half_ratio >= DOUBLE_TIME_RATIO or quarter_ratio >= QUARTER_RATIO):
            factors[k] = 2.0
        elif (bpm[k] > HALVE_ABOVE_BPM and bpm[k] / 2 >= lo and half_ratio < HALVE_BELOW_RATIO
              and _alternation(on[a:b]) < ALTERNATION_RATIO):
            factors[k] = 0.5
    return factors


def _alternation(strength: np.ndarray) -> float:
    """Median of the weaker of every other beat over the stronger (1 for an even pulse)."""
    even, odd = np.median(strength[0::2]), np.median(strength[1::2]) if len(strength) > 1 else 0.0
    return float(min(even, odd) / max(even, odd)) if max(even, odd) > 0 else 1.0


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
    return (beats[hi] - beats[lo]) / np.maximum(hi - lo, 1)


def local_tempo(envelope: np.ndarray, *, hop_rate: int, start_bpm: float = 120.0,
                tempo_range: tuple[float, float] = DEFAULT_TEMPO_RANGE) -> np.ndarray:
    """Tempo curve (BPM) at every envelope sample, from a chunked local tempogram (step 1 above)."""
    import librosa
    import scipy.ndimage

    n = len(envelope) // TEMPO_DECIMATION
    coarse = envelope[: n * TEMPO_DECIMATION].reshape(n, TEMPO_DECIMATION).mean(axis=1)
    coarse_rate = hop_rate / TEMPO_DECIMATION
    win = int(round(TEMPOGRAM_SECONDS * coarse_rate))
    half = win // 2
    lags_bpm = librosa.tempo_frequencies(win, sr=coarse_rate, hop_length=1)
    lo, hi = tempo_range
    with np.errstate(divide="ignore"):
        octaves = np.log2(lags_bpm / start_bpm)
    prior = np.where((lags_bpm >= lo) & (lags_bpm <= hi), np.exp(-0.5 * (octaves / PRIOR_OCTAVES) ** 2), 0.0)
    padded = np.pad(coarse, half, mode="linear_ramp", end_values=0)
    columns = np.empty(max(n, 1))
    total = np.zeros(win)
    for first in range(0, n, _CHUNK_FRAMES):
        stop = min(n, first + _CHUNK_FRAMES)
        piece = padded[first: stop + 2 * half]
        tg = librosa.feature.tempogram(onset_envelope=piece, sr=coarse_rate, hop_length=1,
                                       win_length=win, center=False)[:, : stop - first]
        total += tg.sum(axis=1)
        weighted = tg * prior[:, None]
        columns[first:stop] = np.where(weighted.max(axis=0) > 0, lags_bpm[weighted.argmax(axis=0)], np.nan)
    fallback = lags_bpm[np.argmax(total * prior)] if np.any(total * prior > 0) else min(max(start_bpm, lo), hi)
    columns = np.where(np.isfinite(columns), columns, fallback)
    if n > win:  # a window half made of padding favours short lags (an 87 BPM groove's eighths read
        columns[:half] = columns[half]  # as 174 in its last two seconds): the edges take the
        columns[n - half:] = columns[n - half - 1]  # nearest column whose window lies inside the track
    width = max(1, int(TEMPO_MEDIAN_SECONDS * coarse_rate)) | 1
    columns = np.exp(scipy.ndimage.median_filter(np.log(columns), size=width, mode="nearest"))
    at = (np.arange(len(envelope)) / TEMPO_DECIMATION).clip(0, len(columns) - 1)
    return np.interp(at, np.arange(len(columns)), columns)


def beat_features(grid: BeatGrid, times: np.ndarray, fps: Fraction, *,
                  pulse_decay_s: float) -> dict[str, np.ndarray]:
    """Per-frame ``beat_pulse``, ``beat_phase`` (0..1), ``beat_presence`` and ``tempo`` (local BPM).

    The pulse is 1 on the frame nearest each beat and decays as exp(-dt / pulse_decay_s). The
    phase runs 0 -> 1 between consecutive beats and is extrapolated with the local tempo before the
    first and after the last; ``beat_presence`` is 1 from the first beat to the last and fades
    linearly to 0 within one beat outside them (the picture stops dancing when the music stops).
    With no beats every series is zero.
    """
    n = len(times)
    beats = grid.beat_times
    if len(beats) == 0 or grid.tempo <= 0:
        zeros = np.zeros(n)
        return {"beat_pulse": zeros, "beat_phase": zeros.copy(), "beat_presence": zeros.copy(),
                "tempo": zeros.copy()}
    rate = fps.numerator / fps.denominator
    beat_frames = np.unique(np.rint(beats * rate).astype(np.int64))  # 0-based frame of each beat
    frame = np.arange(n)
    last = np.searchsorted(beat_frames, frame, side="right") - 1
    since = (frame - beat_frames[np.maximum(last, 0)]) / rate  # seconds since the beat's frame

    spans = _spans(beats)
    first_period, last_period = spans[0], spans[-1]
    position = np.interp(times, beats, np.arange(len(beats), dtype=np.float64))  # beats counted
    before, after = times < beats[0], times > beats[-1]
    position[before] = (times[before] - beats[0]) / first_period
    position[after] = len(beats) - 1 + (times[after] - beats[-1]) / last_period
    phase = np.mod(position, 1.0)
    presence = np.clip(1.0 - np.maximum(-position, position - (len(beats) - 1)), 0.0, 1.0)
    decay = np.exp(-since / pulse_decay_s) if pulse_decay_s > 0 else (since == 0).astype(float)
    pulse = np.where(last >= 0, decay, 0.0) * presence
    local = 60.0 / np.interp(times, beats, spans)  # constant beyond the first/last beat
    return {"beat_pulse": pulse.astype(np.float64), "beat_phase": phase, "beat_presence": presence,
            "tempo": local}
