"""Realistic audio inputs for training and scoring: feature rows that real music produces.

A style must look right under whatever track it is rendered against, so training feeds the
network rows of analysed music (by default the bundled demo track's, analysed once and cached
in ``paths.cache_dir("features")``), each batch element its own row and its own time:

* most rows are real frames of the track (feature combinations as they occur together);
* a fraction are *remixed*: every feature taken from a different random frame, which covers
  combinations another track might make (a loud onset on a quiet bass, ...);
* time is uniform over ``time_range_s``, long enough to cover the slow time phases' cycles.

Nothing here downloads; the demo track is synthesised locally.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.atomic import atomic_path
from backend.errors import InvalidInput, NotFound
from backend.audio.names import FEATURE_NAMES
from backend.paths import cache_dir
from backend.progress import ProgressCallback

FEATURE_FILE_SUFFIXES = (".npz", ".npy", ".json")  # what `audio-cppn features --out` writes, or a bare array


@dataclass
class FeatureRows:
    """Analysed music: one row of canonical features per video frame."""

    values: np.ndarray  # float32 (n, F) in [0, 1], FEATURE_NAMES order
    times: np.ndarray  # float64 (n,) seconds of each row
    source: str  # where they came from (file path or "demo track")


def _check_rows(values: np.ndarray, source: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES) or values.shape[0] < 1:
        raise InvalidInput(f"features in {source} must have shape (frames, {len(FEATURE_NAMES)}), "
                           f"got {values.shape}")
    if not np.isfinite(values).all():
        raise InvalidInput(f"features in {source} contain NaN or infinite values")
    return np.clip(values, 0.0, 1.0)


def read_feature_file(path: Path) -> FeatureRows:
    """Rows from a features file: ``.npz`` (``features`` or ``values``, optional ``times`` and
    ``names``), ``.json`` as written by ``audio-cppn features``, or ``.npy`` (the values array)."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"features file not found: {path}")
    if path.suffix == ".json":
        from backend.audio.files import load_features

        features = load_features(path)
        return FeatureRows(values=_check_rows(features.values, str(path)),
                           times=np.asarray(features.times, dtype=np.float64), source=str(path))
    try:
        if path.suffix == ".npy":
            values, times = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as data:
                key = "values" if "values" in data else "features" if "features" in data else None
                if key is None:
                    raise InvalidInput(f"{path} has no 'values' array; it holds {sorted(data.keys())}")
                values = data[key]
                times = data["times"] if "times" in data else None
                if "names" in data and tuple(str(n) for n in data["names"]) != FEATURE_NAMES:
                    raise InvalidInput(f"{path} has features {list(data['names'])}, expected the canonical "
                                       f"{len(FEATURE_NAMES)}: {', '.join(FEATURE_NAMES)}")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read features file {path}: {exc}") from None
    values = _check_rows(values, str(path))
    if times is None or len(times) != len(values):
        times = np.arange(len(values), dtype=np.float64) / 30.0
    return FeatureRows(values=values, times=np.asarray(times, dtype=np.float64), source=str(path))


def analysed_rows(audio_path: Path, *, progress: ProgressCallback | None = None) -> FeatureRows:
    """Analyse an audio file (cached by content hash in ``cache_dir("features")``)."""
    from backend.audio.features import AudioConfig, analyze

    audio_path = Path(audio_path)
    if not audio_path.is_file():
        raise NotFound(f"audio file not found: {audio_path}")
    config = AudioConfig()
    digest = hashlib.sha256(audio_path.read_bytes() + repr(config).encode()).hexdigest()[:20]
    folder = cache_dir("features")
    cached = folder / f"{audio_path.stem}-{digest}.npz"
    if cached.is_file():
        try:
            rows = read_feature_file(cached)
            return FeatureRows(rows.values, rows.times, str(audio_path))
        except (InvalidInput, NotFound):
            pass  # a damaged cache entry is recomputed below
    features = analyze(audio_path, config=config, progress=progress)
    values = _check_rows(features.values, str(audio_path))
    times = np.asarray(features.times, dtype=np.float64)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as f:
            np.savez(f, values=values, times=times)
    except (OSError, InvalidInput):
        pass  # caching is an optimisation; a read-only checkout still works
    return FeatureRows(values=values, times=times, source=str(audio_path))


def load_rows(source: str | os.PathLike | None = None, *, progress: ProgressCallback | None = None) -> FeatureRows:
    """Feature rows from a features file, an audio file, or (``None``) the bundled demo track."""
    if source is None:
        from backend.audio.demo_track import demo_track_path

        rows = analysed_rows(demo_track_path(), progress=progress)
        return FeatureRows(rows.values, rows.times, "demo track")
    path = Path(source)
    if is_feature_file(path):
        return read_feature_file(path)
    return analysed_rows(path, progress=progress)


def is_feature_file(source: str | os.PathLike) -> bool:
    return Path(source).suffix.lower() in FEATURE_FILE_SUFFIXES


def check_source(source: str | os.PathLike | None) -> FeatureRows | None:
    """Fail fast on a bad features source, before anything slow (loading CLIP) starts.

    A features file is small: it is read whole and returned. An audio file is only probed (its
    analysis may take a while) and None returned, as for ``None`` (the demo track).
    """
    if source is None:
        return None
    if is_feature_file(source):
        return read_feature_file(Path(source))
    from backend.audio.io import probe_audio

    probe_audio(source)
    return None


class AudioSampler:
    """Draws (time, audio) per batch element from real feature rows."""

    def __init__(self, rows: FeatureRows, *, time_range_s: float = 600.0, remix: float = 0.25):
        self.values = torch.from_numpy(rows.values)  # (n, F)
        self.time_range_s = float(time_range_s)
        self.remix = float(remix)

    def sample(self, n: int, *, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(time_s (n,) float64, audio (n, F) float32), drawn only from ``generator``."""
        count, n_features = self.values.shape
        rows = torch.randint(0, count, (n,), generator=generator)
        mixed_rows = torch.randint(0, count, (n, n_features), generator=generator)
        remixed = torch.rand(n, generator=generator) < self.remix
        time_s = torch.rand(n, generator=generator, dtype=torch.float64) * self.time_range_s
        audio = self.values[rows]  # (n, F)
        scrambled = self.values[mixed_rows, torch.arange(n_features)]  # (n, F), per-feature rows
        return time_s, torch.where(remixed[:, None], scrambled, audio)


def spread_rows(rows: FeatureRows, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows evenly spread over the track, at the middles of ``n`` equal parts (so not the
    silent first and last frames): (time_s (n,) float64, audio (n, F) float32)."""
    n = max(1, n)
    index = np.minimum(((np.arange(n) + 0.5) / n * len(rows.values)).astype(np.int64), len(rows.values) - 1)
    return torch.from_numpy(rows.times[index].copy()), torch.from_numpy(rows.values[index].copy())
