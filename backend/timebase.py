"""Frame rates and the one rule that maps audio time to video frames.

Frame ``n`` (a Blender scene frame number) shows the instant ``t = (n - frame_start) / fps``.
A track of ``duration`` seconds has ``frame_count = ceil(duration * fps)`` frames, so the last
frame starts before the audio ends and the video is never shorter than the sound. Both are
computed with exact fractions (29.97 is 30000/1001, not 29.97).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from backend.errors import InvalidInput

# Broadcast rates people type as decimals mean the NTSC fractions.
_NTSC = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
         "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}
MAX_FPS = 200  # audio features are measured every 5 ms (spectral.HOP_RATE): no finer frames
MIN_FPS = Fraction(1, 1000)  # one frame every 1000 s; slower is surely a typo (and 1001ths could not hold it)


def parse_fps(value: str | float | int | Fraction) -> Fraction:
    """Parse ``30``, ``"25"``, ``"29.97"``, ``"30000/1001"`` into an exact positive Fraction."""
    text = str(value).strip()
    if text in _NTSC:
        return _NTSC[text]
    try:
        fps = Fraction(text) if not isinstance(value, Fraction) else value
    except (ValueError, ZeroDivisionError, OverflowError):  # OverflowError: "inf"
        raise InvalidInput(f"fps must be a number like 30, 29.97 or 30000/1001, got {text[:40]!r}") from None
    if fps <= 0 or fps > MAX_FPS:
        raise InvalidInput(f"fps must be > 0 and at most {MAX_FPS}, got {text[:40]}")
    if fps < MIN_FPS:
        raise InvalidInput(f"fps must be at least {float(MIN_FPS):g} (one frame per {int(1 / MIN_FPS)} s), "
                           f"got {text[:40]}")
    # 29.97 typed as a float arrives as 29.97; map it to the NTSC fraction too.
    for key, exact in _NTSC.items():
        if fps == Fraction(key):
            return exact
    return fps.limit_denominator(1001) if fps.denominator > 1001 else fps


def fps_label(fps: Fraction) -> str:
    """``30`` or ``30000/1001`` — what we write into manifests and file metadata."""
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def frame_count(n_samples: int, sample_rate: int, fps: Fraction) -> int:
    """Frames covering ``n_samples`` of audio: ``ceil(duration * fps)``, exactly."""
    return -((-n_samples * fps.numerator) // (sample_rate * fps.denominator))


def frame_count_for_seconds(seconds: float, fps: Fraction) -> int:
    return int(math.ceil(Fraction(seconds) * fps - Fraction(1, 10**9)))


def frame_times(n_frames: int, fps: Fraction) -> np.ndarray:
    """Seconds of frames ``frame_start .. frame_start + n_frames - 1``: ``i / fps`` for i in 0..n-1."""
    i = np.arange(n_frames, dtype=np.float64)
    return i * fps.denominator / fps.numerator


def frame_of_time(t: float, fps: Fraction, frame_start: int = 1) -> int:
    """The scene frame that shows time ``t``: ``frame_start + round(t * fps)``."""
    return frame_start + int(round(t * fps.numerator / fps.denominator))
