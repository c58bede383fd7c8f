"""Turning raw per-frame measurements into [0, 1] values: robust normalisation and smoothing.

Normalisation is per track and robust: levels (dB) and the centroid (octaves) map a low and a high
percentile of the non-silent frames to 0 and 1, so one loud hit does not flatten the rest. The
percussive and harmonic parts use the whole mix's (RMS) mapping, so they tell which part is loud. A full
0 -> 1 swing needs at least a minimum span (e.g. 12 dB): a steady signal, such as a constant tone,
has no span and sits at 0 — nothing changes, so nothing moves — instead of dividing by zero.
Silent frames (RMS at or below the floor) are 0 for every level and spectral feature. The rest:

* onset: scaled so the 90th percentile of its peak heights is 1 (the top tenth of hits saturate),
  and, in a passage whose hits within 3 s are all softer, by its strongest hit (at most 4x louder);
* beat_pulse as is; beat_sin / beat_cos as 0.5 + 0.5 sin / cos(2 pi phase) while there is a beat,
  fading to 0 within one beat outside the first..last beat; all 0 without beats;
* tempo: 60..180 BPM -> 0..1, absolute, so styles see the same number for the same tempo;
* chroma: per-frame contrast, the median pitch class -> 0 and the strongest -> 1;
* chord_sin / chord_cos as 0.5 + 0.5 sin / cos(root on the circle of fifths), chord_major 1 or 0,
  all three 0 where no chord is heard.

Smoothing follows attack/release envelopes. Zero-phase (the default, for offline rendering) keeps
every peak on its frame: the value rises over ``attack`` *before* the event and falls over
``release`` after it, never exceeding the peak. Causal mode is the classic envelope follower
(rise over ``attack`` after the event), as a live visualiser would see it.
"""

from __future__ import annotations

import numba
import numpy as np

from backend.audio.names import BANDS, CHROMA, FEATURE_INDEX

ONSET_MIN_PEAK = 0.04  # flux of a click at about -33 dBFS: smaller "peaks" (a steady bass ripple) stay low
ONSET_LOCAL_S = 3.0  # onsets are also scaled by the strongest hit within this many seconds either side ...
ONSET_LOCAL_GAIN = 4.0  # ... lifting a quiet passage at most this much (12 dB) above the track's scale
TEMPO_RANGE_BPM = (60.0, 180.0)  # mapped to 0..1, absolute (not per track)


def shape_features(raw: np.ndarray, config) -> np.ndarray:
    """Normalise every column of ``raw`` (n_frames, 29) to [0, 1] per track, then smooth it.

    ``config`` is an :class:`~backend.audio.features.AudioConfig`; see the module docstring.
    """
    values = np.zeros_like(raw)
    active = raw[:, FEATURE_INDEX["rms"]] > config.floor_db  # frames that are not silent
    for name in (*BANDS, "rms"):
        i = FEATURE_INDEX[name]
        values[:, i] = normalise_levels(raw[:, i], active, percentiles=config.level_percentiles,
                                        min_range=config.min_range_db, max_range=config.max_range_db,
                                        floor=config.floor_db)
    # The two parts share the whole mix's scale, so they say which part is loud: an ambient piece's
    # faint percussive residue stays low instead of being stretched over 0..1 on its own.
    rms = raw[:, FEATURE_INDEX["rms"]]
    if active.any():
        loudness = level_range(rms[active], percentiles=config.level_percentiles, min_range=config.min_range_db,
                               max_range=config.max_range_db, floor=config.floor_db)
        for name in ("percussive", "harmonic"):
            values[:, FEATURE_INDEX[name]] = apply_level_range(raw[:, FEATURE_INDEX[name]], active, loudness)
    i = FEATURE_INDEX["onset"]
    values[:, i] = normalise_onset(raw[:, i], active, percentile=config.onset_percentile, min_peak=ONSET_MIN_PEAK,
                                   local_frames=int(round(ONSET_LOCAL_S * config.fps.numerator / config.fps.denominator)))
    has_beats = np.any(raw[:, FEATURE_INDEX["tempo"]] > 0)
    values[:, FEATURE_INDEX["beat_pulse"]] = raw[:, FEATURE_INDEX["beat_pulse"]]
    # raw sin/cos are scaled by the beat's presence (fading out within a beat of the last one)
    presence = np.hypot(raw[:, FEATURE_INDEX["beat_sin"]], raw[:, FEATURE_INDEX["beat_cos"]])
    for name in ("beat_sin", "beat_cos"):
        values[:, FEATURE_INDEX[name]] = (0.5 * presence + 0.5 * raw[:, FEATURE_INDEX[name]]) * has_beats
    slow, fast = TEMPO_RANGE_BPM
    values[:, FEATURE_INDEX["tempo"]] = np.clip((raw[:, FEATURE_INDEX["tempo"]] - slow) / (fast - slow), 0.0, 1.0)
    # Chroma contrast: the per-frame median pitch class -> 0, the strongest -> 1. Noise and
    # drums spread over every pitch class and fall away; chords stand out.
    chroma = raw[:, FEATURE_INDEX[CHROMA[0]]: FEATURE_INDEX[CHROMA[-1]] + 1]
    middle = np.median(chroma, axis=1, keepdims=True)
    spread = chroma.max(axis=1, keepdims=True) - middle
    contrast = np.divide(chroma - middle, spread, out=np.zeros_like(chroma), where=spread > 1e-6)
    values[:, FEATURE_INDEX[CHROMA[0]]: FEATURE_INDEX[CHROMA[-1]] + 1] = np.clip(contrast, 0, 1) * active[:, None]
    # raw chord sin/cos have length 1 where a chord is heard, 0 elsewhere; major is +1 / -1 there
    heard = np.hypot(raw[:, FEATURE_INDEX["chord_sin"]], raw[:, FEATURE_INDEX["chord_cos"]])
    for name in ("chord_sin", "chord_cos", "chord_major"):
        values[:, FEATURE_INDEX[name]] = 0.5 * heard + 0.5 * raw[:, FEATURE_INDEX[name]]
    i = FEATURE_INDEX["centroid"]
    centroid = raw[:, i]
    voiced = active & (centroid > 0)
    values[:, i] = normalise_levels(np.log2(np.maximum(centroid, 1.0)), voiced,
                                    percentiles=config.level_percentiles, min_range=config.min_range_octaves)
    rate = config.fps.numerator / config.fps.denominator
    for name, (attack_ms, release_ms) in config.smoothing.items():
        i = FEATURE_INDEX[name]
        values[:, i] = smooth(values[:, i], attack_s=attack_ms / 1000, release_s=release_ms / 1000,
                              fps=rate, zero_phase=config.zero_phase)
    return np.clip(values, 0.0, 1.0)


def normalise_levels(x: np.ndarray, active: np.ndarray, *, percentiles: tuple[float, float],
                     min_range: float, max_range: float = np.inf, floor: float | None = None) -> np.ndarray:
    """Map ``x`` (n,) to [0, 1]: percentile ``lo`` of the active frames -> 0, ``hi`` -> 1.

    ``lo`` is raised to ``floor`` and to ``hi - max_range`` (nothing below counts), then ``hi``
    to ``lo + min_range``. Inactive frames are 0. No active frame at all gives all zeros.
    """
    valid = active & np.isfinite(x)
    if not valid.any():
        return np.zeros(len(x), np.float64)
    return apply_level_range(x, active, level_range(x[valid], percentiles=percentiles, min_range=min_range,
                                                    max_range=max_range, floor=floor))


def level_range(x: np.ndarray, *, percentiles: tuple[float, float], min_range: float,
                max_range: float = np.inf, floor: float | None = None) -> tuple[float, float]:
    """The (lo, hi) that :func:`normalise_levels` maps to 0 and 1, from the active values ``x``."""
    lo, hi = np.percentile(x, percentiles)
    lo = max(lo, hi - max_range, -np.inf if floor is None else floor)
    return lo, max(hi, lo + min_range)


def apply_level_range(x: np.ndarray, active: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``x`` (n,) mapped linearly from ``bounds`` to [0, 1]; inactive or non-finite values are 0."""
    lo, hi = bounds
    out = np.zeros(len(x), np.float64)
    valid = active & np.isfinite(x)
    out[valid] = np.clip((x[valid] - lo) / (hi - lo), 0.0, 1.0)
    return out


def normalise_onset(x: np.ndarray, active: np.ndarray, *, percentile: float, min_peak: float,
                    local_frames: int = 0) -> np.ndarray:
    """Onset strength (n,) >= 0 -> [0, 1], scaled so the ``percentile`` of its peak heights is 1.

    Peaks (local maxima) rather than all frames: between hits the flux is near zero, and a
    percentile of every frame would land there. ``min_peak`` keeps numeric noise in a steady
    signal from being stretched into flicker. With ``local_frames``, a passage whose strongest hit
    within that many frames either side is weaker than the track's scale is scaled by that hit
    instead (up to ONSET_LOCAL_GAIN times louder): soft notes in a quiet passage rise above the floor.
    """
    xa = np.where(active, x, 0.0)
    if len(xa) < 3:
        return np.zeros(len(x), np.float64)
    peak = np.r_[False, (xa[1:-1] > xa[:-2]) & (xa[1:-1] >= xa[2:]), False]
    heights = xa[peak]
    scale = max(float(np.percentile(heights, percentile)) if len(heights) else 0.0, min_peak)
    if local_frames > 0:
        import scipy.ndimage

        nearby = scipy.ndimage.maximum_filter1d(xa, size=2 * local_frames + 1, mode="constant")
        scale = np.clip(nearby, max(scale / ONSET_LOCAL_GAIN, min_peak), scale)
    return np.clip(xa / scale, 0.0, 1.0)


def smoothing_coefficient(time_s: float, fps: float) -> float:
    """One-pole coefficient reaching 1 - 1/e of a step after ``time_s`` seconds (1.0 = instant)."""
    return 1.0 if time_s <= 0 else float(1.0 - np.exp(-1.0 / (time_s * fps)))


def smooth(x: np.ndarray, *, attack_s: float, release_s: float, fps: float, zero_phase: bool = True) -> np.ndarray:
    """Attack/release smoothing of one feature (n,) sampled at ``fps``; see the module docstring."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if len(x) == 0 or (attack_s <= 0 and release_s <= 0):
        return x.copy()
    a_attack = smoothing_coefficient(attack_s, fps)
    a_release = smoothing_coefficient(release_s, fps)
    if not zero_phase:
        return _follow(x, a_attack, a_release)
    decayed = _follow(x, 1.0, a_release)  # instant rise, release after each peak
    return _follow(decayed[::-1].copy(), 1.0, a_attack)[::-1].copy()  # the same backwards: attack before


@numba.njit(cache=True)
def _follow(x, a_up, a_down):  # pragma: no cover - compiled
    y = np.empty_like(x)
    y[0] = x[0]
    for n in range(1, len(x)):
        a = a_up if x[n] > y[n - 1] else a_down
        y[n] = y[n - 1] + a * (x[n] - y[n - 1])
    return y
