"""Feature files: .npz (arrays), .csv (a table for spreadsheets) and .json (for any language).

Every file holds the normalised ``features`` [n_frames, n_features] (float32), their ``names``,
the frame ``times``, ``fps`` (exact, e.g. "30000/1001") and ``frame_start``; npz and json also keep
the raw values, tempo, beat times and the analysis settings, so :func:`load_features` rebuilds
the :class:`~backend.audio.features.Features`. Files are written to a temporary name in the same
folder and renamed into place: an interrupted write never leaves a half file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from backend.atomic import check_writable, write_bytes
from backend.errors import InvalidInput, NotFound
from backend.timebase import fps_label
from backend.user_paths import check_not_special, check_path_names

FEATURE_SUFFIXES = (".npz", ".csv", ".json")


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


def save_features(features, path: str | os.PathLike) -> Path:
    """Write ``features`` as .npz, .csv or .json (chosen by suffix), atomically. Returns the path."""
    path = check_output_path(path)
    return write_bytes(path, features_bytes(features, path.suffix))


def features_bytes(features, suffix: str) -> bytes:
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


def load_features(path: str | os.PathLike):
    """Read a .npz or .json written by :func:`save_features` back into Features."""
    from backend.audio.features import Features

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"features file not found: {path}")
    kind = path.suffix.lower()
    try:
        if kind == ".npz":
            with np.load(path, allow_pickle=False) as data:
                fields = {k: data[k] for k in data.files}
            fields["names"] = [str(n) for n in fields["names"]]
            fields["fps"] = str(fields["fps"])
            fields["config"] = json.loads(str(fields.get("config", "{}")))
        elif kind == ".json":
            fields = json.loads(path.read_text())
        else:
            raise InvalidInput(f"load_features reads .npz or .json, got {path.name}")
        values = np.asarray(fields["features"], dtype=np.float32)
        return Features(values=values, raw=np.asarray(fields.get("raw", values), dtype=np.float32),
                        names=tuple(fields["names"]), times=np.asarray(fields["times"], dtype=np.float64),
                        fps=Fraction(str(fields["fps"])), frame_start=int(fields["frame_start"]),
                        duration=float(fields.get("duration", 0.0)), sample_rate=int(fields.get("sample_rate", 0)),
                        tempo=float(fields.get("tempo", 0.0)),
                        beat_times=np.asarray(fields.get("beat_times", []), dtype=np.float64),
                        config=dict(fields.get("config", {})))
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not a features file written by audio-cppn ({exc})") from None


def _npz_fields(features) -> dict:
    return {"features": features.values.astype(np.float32), "raw": features.raw.astype(np.float32),
            "names": np.array(features.names), "times": features.times.astype(np.float64),
            "fps": np.array(fps_label(features.fps)), "frame_start": np.array(features.frame_start),
            "duration": np.array(features.duration), "sample_rate": np.array(features.sample_rate),
            "tempo": np.array(features.tempo), "beat_times": features.beat_times.astype(np.float64),
            "config": np.array(json.dumps(features.config))}


def _json_fields(features) -> dict:
    return {"names": list(features.names), "fps": fps_label(features.fps), "frame_start": features.frame_start,
            "n_frames": int(features.n_frames), "duration": features.duration,
            "sample_rate": features.sample_rate, "tempo": features.tempo,
            "beat_times": [round(float(t), 6) for t in features.beat_times],
            "times": [round(float(t), 6) for t in features.times],
            "features": [[round(float(v), 6) for v in row] for row in features.values],
            "raw": [[round(float(v), 4) for v in row] for row in features.raw], "config": features.config}
