"""Synthetic test signals every test can reuse: clicks at known times, tones, pulse trains, files.

All signals are float32, shape (n,) for mono or (n, channels) like soundfile, deterministic
(seeded), and short, so tests stay fast. ``write_audio`` writes them in a real file format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

# The subtype each container is written with (soundfile picks a sensible one per format).
SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}


def irregular_times(n: int, *, start: float = 0.4, min_gap: float = 0.23, max_gap: float = 0.61,
                    seed: int = 0) -> np.ndarray:
    """``n`` increasing times (s) with random gaps in [min_gap, max_gap): never a regular grid."""
    rng = np.random.default_rng(seed)
    return start + np.concatenate([[0.0], np.cumsum(rng.uniform(min_gap, max_gap, n - 1))])


def click_track(times, *, sr: int, duration: float, channels: int = 1, click_ms: float = 2.0,
                amplitude: float = 0.8, seed: int = 0) -> np.ndarray:
    """Short noise bursts (``click_ms`` long) starting at ``times`` (s) in silence."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    y = np.zeros(n, np.float32)
    length = max(1, int(round(click_ms * sr / 1000)))
    for t in times:
        i = int(round(t * sr))
        burst = amplitude * rng.uniform(-1.0, 1.0, length) * np.hanning(length + 2)[1:-1]
        y[i: i + length] += burst[: max(0, n - i)].astype(np.float32)
    return _channels(y, channels)


def tone(freq: float, *, sr: int, duration: float, amplitude: float = 0.5, channels: int = 1,
         fade_s: float = 0.01) -> np.ndarray:
    """A steady sine at ``freq`` Hz with short fades so its ends do not click."""
    t = np.arange(int(round(duration * sr))) / sr
    y = amplitude * np.sin(2 * np.pi * freq * t)
    fade = min(len(t) // 2, int(fade_s * sr))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    return _channels(y.astype(np.float32), channels)


def pulse_train(bpm: float, *, sr: int, duration: float, start: float = 0.25, channels: int = 1,
                amplitude: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Kick-like pulses (a decaying 60 Hz thump with a click) every beat; returns (y, beat times)."""
    period = 60.0 / bpm
    beats = np.arange(start, duration - 0.1, period)
    n = int(round(duration * sr))
    y = np.zeros(n, np.float32)
    length = int(0.15 * sr)
    t = np.arange(length) / sr
    thump = amplitude * np.exp(-t / 0.04) * np.sin(2 * np.pi * (60 * t + 400 * 0.005 * (1 - np.exp(-t / 0.005))))
    for b in beats:
        i = int(round(b * sr))
        y[i: i + length] += thump[: max(0, n - i)].astype(np.float32)
    return _channels(y, channels), beats


def write_audio(path: str | Path, y: np.ndarray, sr: int, *, fmt: str | None = None) -> Path:
    """Write ``y`` at ``sr`` as wav, flac, mp3 or ogg (from ``fmt`` or the suffix); returns the path."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    sf.write(str(path), y, sr, format=fmt.upper(), subtype=SUBTYPES[fmt])
    return path


def _channels(y: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return y
    # Slightly different gains per channel: a downmix must still keep every hit.
    gains = np.linspace(1.0, 0.7, channels, dtype=np.float32)
    return np.stack([y * g for g in gains], axis=1)
