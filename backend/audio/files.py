"""Per-frame audio features (:class:`Features`) and their files: the one writer and the one reader.

Written by :func:`save_features`: .npz (arrays), .csv (a table for spreadsheets) and .json (for any
language). Every file holds the normalised ``features`` [n_frames, n_features] (float32), their
``names``, the frame ``times``, ``fps`` (exact, e.g. "30000/1001") and ``frame_start``; npz and
json also keep the raw values, tempo, beat times and the analysis settings, so :func:`load_features`
rebuilds the Features. Files are written to a temporary name in the same folder and renamed into
place: an interrupted write never leaves a half file.

Read by :func:`load_features`: the .npz and .json files above, and bare arrays from other tools —
a (frames, 29) array as .npy, or an .npz holding ``features`` (or ``values``) and optionally
``times`` and ``names``; such a file counts as 30 fps from frame 1 unless it says otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from backend.atomic import check_writable, write_bytes
from backend.audio.names import FEATURE_INDEX, FEATURE_NAMES
from backend.errors import InvalidInput
from backend.timebase import fps_label, frame_times
from backend.user_paths import check_not_special, check_path_names, check_regular_file

FEATURE_SUFFIXES = (".npz", ".csv", ".json")  # what save_features writes
READ_SUFFIXES = (".npz", ".json", ".npy")  # what load_features reads
BARE_FPS = Fraction(30)  # the frame rate of a bare array that does not state its own


@dataclass
class Features:
    values: np.ndarray  # float32 (n_frames, 29): normalised + smoothed, in [0, 1], FEATURE_NAMES order
    raw: np.ndarray  # float32 (n_frames, 29): before normalisation (dB, BPM, Hz, flux, ...)
    names: tuple[str, ...]  # == FEATURE_NAMES
    times: np.ndarray  # float64 (n_frames,): seconds shown by each frame, i / fps
    fps: Fraction
    frame_start: int  # scene frame number of row 0
    duration: float  # seconds of audio
    sample_rate: int  # of the source audio
    tempo: float  # global BPM estimate; 0.0 when no beat was found
    beat_times: np.ndarray  # float64 seconds
    config: dict = field(default_factory=dict)  # AudioConfig.to_dict() that produced these

    @property
    def n_frames(self) -> int:
        return len(self.values)

    def frame_numbers(self) -> np.ndarray:
        """Scene frame number of each row: frame_start + arange(n_frames)."""
        return self.frame_start + np.arange(self.n_frames)

    def column(self, name: str) -> np.ndarray:
        """The normalised values of one feature, shape (n_frames,)."""
        if name not in FEATURE_INDEX:
            raise InvalidInput(f"unknown feature {name!r}; known: {', '.join(self.names)}")
        return self.values[:, FEATURE_INDEX[name]]

    def raw_column(self, name: str) -> np.ndarray:
        if name not in FEATURE_INDEX:
            raise InvalidInput(f"unknown feature {name!r}; known: {', '.join(self.names)}")
        return self.raw[:, FEATURE_INDEX[name]]


def check_output_path(path: str | os.PathLike, suffixes: tuple[str, ...] = FEATURE_SUFFIXES) -> Path:
    """Fail early (before a long analysis) if ``path`` has the wrong suffix or cannot be written."""
    path = check_path_names(path, "output")
    if path.suffix.lower() not in suffixes:
        raise InvalidInput(f"output {path} must end in {', '.join(suffixes)}, got {path.suffix or 'no suffix'!r}")
    if path.is_dir():
        raise InvalidInput(f"cannot write {path}: it is a directory")
    folder = path.parent
    if not folder.exists():
        raise InvalidInput(f"cannot write {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise InvalidInput(f"cannot write {path}: {folder} is not a folder")
    check_not_special(path, "output")  # a pipe or device there is not ours to replace
    check_writable(folder)
    return path


def save_features(features: Features, path: str | os.PathLike) -> Path:
    """Write ``features`` as .npz, .csv or .json (chosen by suffix), atomically. Returns the path."""
    path = check_output_path(path)
    return write_bytes(path, features_bytes(features, path.suffix))


def features_bytes(features: Features, suffix: str) -> bytes:
    """The file contents of ``features`` in the format of ``suffix`` (.npz, .csv or .json)."""
    kind = suffix.lower()
    if kind == ".npz":
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **_npz_fields(features))
        return buffer.getvalue()
    if kind == ".json":
        return json.dumps(_json_fields(features)).encode()
    if kind != ".csv":
        raise InvalidInput(f"feature files end in {', '.join(FEATURE_SUFFIXES)}, got {suffix!r}")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["frame", "time", *features.names])
    for frame, t, row in zip(features.frame_numbers(), features.times, features.values, strict=True):
        writer.writerow([int(frame), f"{t:.6f}", *(f"{v:.6g}" for v in row)])
    return text.getvalue().encode()


def load_features(path: str | os.PathLike) -> Features:
    """Read a features file (.npz, .json or .npy; see the module docstring) into Features.

    Raises NotFound for a missing file and InvalidInput for anything that is not (frames, 29)
    finite feature values with the canonical names.
    """
    path = Path(path)
    check_regular_file(path, "features file")  # a FIFO or a device is refused, not read
    kind = path.suffix.lower()
    if kind not in READ_SUFFIXES:
        raise InvalidInput(f"features files are read from {', '.join(READ_SUFFIXES)}, got {path.name}")
    try:
        fields = _read_fields(path, kind)
        values = _checked_values(fields, path)
        fps = Fraction(str(fields.get("fps", BARE_FPS)))
        times = np.asarray(fields.get("times", ()), dtype=np.float64)
        if len(times) != len(values):  # a bare array without (usable) times: frame i shows i / fps
            times = frame_times(len(values), fps)
        return Features(values=values, raw=np.asarray(fields.get("raw", values), dtype=np.float32),
                        names=FEATURE_NAMES, times=times, fps=fps, frame_start=int(fields.get("frame_start", 1)),
                        duration=float(fields.get("duration", len(values) / fps)),
                        sample_rate=int(fields.get("sample_rate", 0)), tempo=float(fields.get("tempo", 0.0)),
                        beat_times=np.asarray(fields.get("beat_times", []), dtype=np.float64),
                        config=dict(fields.get("config", {})))
    except (KeyError, ValueError, TypeError, AttributeError, ZeroDivisionError, OSError) as exc:
        raise InvalidInput(f"{path} is not a features file audio-cppn can read ({exc})") from None


def _read_fields(path: Path, kind: str) -> dict:
    if kind == ".json":
        return json.loads(path.read_text())
    if kind == ".npy":
        return {"features": np.load(path, allow_pickle=False)}
    with np.load(path, allow_pickle=False) as data:
        fields = {k: data[k] for k in data.files}
    if "features" not in fields and "values" in fields:  # a bare array saved under the other usual name
        fields["features"] = fields.pop("values")
    if "features" not in fields:
        raise InvalidInput(f"{path} has no 'features' array; it holds {sorted(fields)}")
    for key in ("fps", "config"):
        if key in fields:
            fields[key] = str(fields[key])
    if "config" in fields:
        fields["config"] = json.loads(fields["config"])
    return fields


def _checked_values(fields: dict, path: Path) -> np.ndarray:
    values = np.asarray(fields["features"], dtype=np.float32)
    names = fields.get("names")
    if names is not None and len(names) < len(FEATURE_NAMES) and \
            tuple(str(n) for n in names) == FEATURE_NAMES[: len(names)]:
        raise InvalidInput(f"{path} was written by an older audio-cppn analysis ({len(names)} features, now "
                           f"{len(FEATURE_NAMES)}); analyse the audio again")
    if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES) or values.shape[0] < 1:
        raise InvalidInput(f"features in {path} must have shape (frames, {len(FEATURE_NAMES)}), "
                           f"got {values.shape}")
    if names is not None and tuple(str(n) for n in names) != FEATURE_NAMES:
        raise InvalidInput(f"{path} has features {[str(n) for n in names]}, expected the canonical "
                           f"{len(FEATURE_NAMES)}: {', '.join(FEATURE_NAMES)}")
    if not np.isfinite(values).all():
        raise InvalidInput(f"features in {path} contain NaN or infinite values")
    return values


def _npz_fields(features: Features) -> dict:
    return {"features": features.values.astype(np.float32), "raw": features.raw.astype(np.float32),
            "names": np.array(features.names), "times": features.times.astype(np.float64),
            "fps": np.array(fps_label(features.fps)), "frame_start": np.array(features.frame_start),
            "duration": np.array(features.duration), "sample_rate": np.array(features.sample_rate),
            "tempo": np.array(features.tempo), "beat_times": features.beat_times.astype(np.float64),
            "config": np.array(json.dumps(features.config))}


def _json_fields(features: Features) -> dict:
    return {"names": list(features.names), "fps": fps_label(features.fps), "frame_start": features.frame_start,
            "n_frames": int(features.n_frames), "duration": features.duration,
            "sample_rate": features.sample_rate, "tempo": features.tempo,
            "beat_times": [round(float(t), 6) for t in features.beat_times],
            "times": [round(float(t), 6) for t in features.times],
            "features": [[round(float(v), 6) for v in row] for row in features.values],
            "raw": [[round(float(v), 4) for v in row] for row in features.raw], "config": features.config}
