"""A chord per frame from chroma: root and major/minor, by matching the 24 triad templates.

Chroma (12 pitch classes, C first) is averaged over ``CHORD_WINDOW_S`` so that passing notes and
arpeggios count towards the chord they belong to, then compared (cosine) with a template for each
major and minor triad; the templates include each note's overtones, and the root's fifth weighs a
little less than root and third, so a bare fifth (C-G) reads as C rather than G. A Viterbi path over the 24 chords, charged for every change, picks the
sequence (a bass note on the fifth for one beat does not flip the chord); a frame whose chord does
not fit at all (``MIN_FIT``) has none.

The root is given on the circle of fifths (C, G, D, A, ...), so neighbouring keys sit side by side
and a style sees neighbouring colours for related chords.
"""

from __future__ import annotations

import numba
import numpy as np

CHORD_WINDOW_S = 0.5  # chroma averaged over this window before matching
SWITCH_COST = 1.5  # summed fit a new chord must gain to replace the current one: a passing bass note cannot
MIN_FIT = 0.5  # cosine below this: no chord (noise, drums alone, a single note)
_WEIGHTS = (1.0, 1.0, 0.8)  # root, third, fifth
# Each note's overtones (Gomez 2006): an E's third harmonic is a B, so C major's chroma holds some B
# and D, which a bare triad template would read as a hint of G major.
HARMONICS = 6
HARMONIC_DECAY = 0.6


def _templates() -> np.ndarray:
    """(24, 12): major triads on C..B, then minor triads on C..B, unit length, overtones included."""
    rows = []
    for third in (4, 3):
        for root in range(12):
            row = np.zeros(12)
            for interval, weight in zip((0, third, 7), _WEIGHTS):
                for h in range(1, HARMONICS + 1):  # a played note also sounds its fifth, third, ... above
                    row[(root + interval + round(12 * np.log2(h))) % 12] += weight * HARMONIC_DECAY ** (h - 1)
            rows.append(row / np.linalg.norm(row))
    return np.array(rows)


TEMPLATES = _templates()


def estimate_chords(chroma: np.ndarray, active: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of ``chroma`` (n, 12) >= 0: root pitch class (0 = C; -1 where no chord) and major (bool)."""
    width = max(1, int(round(CHORD_WINDOW_S * fps)))
    kernel = np.ones(width) / width
    pad = width // 2
    padded = np.pad(chroma, ((pad, width - 1 - pad), (0, 0)), mode="edge")
    averaged = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(12)], axis=1)
    averaged = averaged - averaged.min(axis=1, keepdims=True)  # what every pitch class shares says nothing
    norm = np.linalg.norm(averaged, axis=1, keepdims=True)
    unit = np.divide(averaged, norm, out=np.zeros_like(averaged), where=norm > 1e-9)
    fit = unit @ TEMPLATES.T  # (n, 24)
    best = _viterbi(fit, SWITCH_COST)
    ok = active & (fit[np.arange(len(fit)), best] >= MIN_FIT)
    return np.where(ok, best % 12, -1), best < 12


@numba.njit(cache=True)
def _viterbi(fit, switch_cost):  # pragma: no cover - compiled
    """The chord sequence maximising the summed fit minus ``switch_cost`` per change."""
    n, k = fit.shape
    score = fit[0].copy()
    back = np.zeros((n, k), np.int64)
    for t in range(1, n):
        leader = np.argmax(score)
        new = np.empty(k)
        for j in range(k):
            if score[j] >= score[leader] - switch_cost:
                new[j] = score[j] + fit[t, j]
                back[t, j] = j
            else:
                new[j] = score[leader] - switch_cost + fit[t, j]
                back[t, j] = leader
        score = new
    path = np.empty(n, np.int64)
    path[n - 1] = np.argmax(score)
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def fifths_angle(root: np.ndarray) -> np.ndarray:
    """Angle (radians) of each root pitch class on the circle of fifths: C 0, G 30 degrees, D 60 ..."""
    return 2 * np.pi * ((7 * np.asarray(root)) % 12) / 12


def root_from_angle(angle: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fifths_angle` (7 is its own inverse modulo 12)."""
    steps = np.rint(np.mod(angle, 2 * np.pi) / (2 * np.pi) * 12).astype(np.int64) % 12
    return (7 * steps) % 12
