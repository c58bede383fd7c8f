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
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from backend.audio.files import READ_SUFFIXES, Features, load_features, save_features
from backend.errors import InvalidInput, NotFound
from backend.paths import cache_dir, file_sha256
from backend.progress import ProgressCallback

if TYPE_CHECKING:
    from backend.audio.features import AudioConfig


@dataclass
class FeatureRows:
    """Analysed music: one row of canonical features per video frame."""

    values: np.ndarray  # float32 (n, F) in [0, 1], FEATURE_NAMES order
    times: np.ndarray  # float64 (n,) seconds of each row
    source: str  # where they came from (file path or "demo track")


def rows_of(features: Features, source: str) -> FeatureRows:
    """Training rows from Features: the values clipped to [0, 1] (a bare array from another tool may
    stray outside; analysis never does)."""
    return FeatureRows(values=np.clip(np.asarray(features.values, np.float32), 0.0, 1.0),
                       times=np.asarray(features.times, dtype=np.float64), source=source)


def read_feature_file(path: str | os.PathLike) -> FeatureRows:
    """Rows from a features file: whatever :func:`backend.audio.files.load_features` reads."""
    return rows_of(load_features(path), str(path))


def features_cache_path(audio_path: Path, config: AudioConfig) -> Path:
    """Where the analysis of ``audio_path`` with ``config`` is cached: keyed by the file's content and
    every analysis setting, the analysis version included, so a new analysis never reads stale rows."""
    settings = json.dumps(config.to_dict(), sort_keys=True)
    digest = hashlib.sha256(f"{file_sha256(audio_path)}\n{settings}".encode()).hexdigest()[:20]
    return cache_dir("features") / f"{audio_path.stem}-{digest}.npz"


def analysed_rows(audio_path: Path, *, progress: ProgressCallback | None = None) -> FeatureRows:
    """Analyse an audio file (cached in ``cache_dir("features")``, see :func:`features_cache_path`)."""
    from backend.audio.features import AudioConfig, analyze

    audio_path = Path(audio_path)
    if not audio_path.is_file():
        raise NotFound(f"audio file not found: {audio_path}")
    config = AudioConfig()
    cached = features_cache_path(audio_path, config)
    if cached.is_file():
        try:
            return rows_of(load_features(cached), str(audio_path))
        except (InvalidInput, NotFound):
            pass  # a damaged cache entry is recomputed below
    features = analyze(audio_path, config=config, progress=progress)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_features(features, cached)
    except (OSError, InvalidInput):
        pass  # caching is an optimisation; a read-only checkout still works
    return rows_of(features, str(audio_path))


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
    return Path(source).suffix.lower() in READ_SUFFIXES


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
