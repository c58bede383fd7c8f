"""``manifest.json``: what an output folder of frames was rendered from, so it can be resumed or verified.

It records the audio (path, fingerprint, length, and its sha256 when the whole track was analysed), fps, size, the style (name, kind, sha256), every
setting that shapes the frames, the track's frame numbers, the ranges rendered so far, the device
and the audio-cppn version. A rerun compares its own manifest with the folder's: the *identity*
(everything that changes the pixels or the files) must match, or the render is refused.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from backend.atomic import write_text
from backend.errors import BackendError, InvalidInput
from backend.user_paths import open_regular

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 << 20  # far above any real manifest (its ranges merge); a bigger file is not ours
# Top-level keys whose values must match for a folder to be resumed. Not identity: where the
# audio file lives (its hash is), the ranges, the device (CPU FP32 and CUDA FP16 differ by
# rounding only), timestamps.
IDENTITY = ("format_version", "version", "fps", "size", "frame_start", "settings")
NESTED_IDENTITY = {"audio": ("fingerprint",), "style": ("sha256",)}


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """Sorted union of inclusive [first, last] ranges; touching ranges join."""
    merged: list[list[int]] = []
    for first, last in sorted([int(a), int(b)] for a, b in ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return merged


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest, or None when there is none."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists() and not path.is_symlink():
        return None
    try:
        with open_regular(path, "render manifest") as f:  # a pipe or device there must not block us
            data = json.loads(f.read(MAX_MANIFEST_BYTES + 1).decode("utf-8"))
    except (OSError, ValueError, RecursionError, BackendError) as exc:
        raise InvalidInput(f"{path} is not a readable render manifest ({exc})",
                           fix="delete it, or use --overwrite to start the folder afresh") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise InvalidInput(f"{path} is not an audio-cppn render manifest")
    ranges = data.setdefault("ranges", [])
    if not (isinstance(ranges, list) and all(isinstance(r, list) and len(r) == 2 and
                                             all(type(n) is int and 0 <= n < 2**31 for n in r) for r in ranges)):
        raise InvalidInput(f"{path} has damaged frame ranges", fix="delete it, or use --overwrite to start afresh")
    for key in ("audio", "style", "settings", "video", "track"):
        if not isinstance(data.setdefault(key, {}), dict):
            raise InvalidInput(f"{path} has a damaged {key!r} entry", fix="delete it, or use --overwrite to start afresh")
    return data


def write_manifest(folder: Path, data: dict) -> Path:
    """Write ``manifest.json`` atomically (temporary name in the same folder, then rename)."""
    return write_text(Path(folder) / MANIFEST_NAME, json.dumps(data, indent=2, sort_keys=False) + "\n")


def identity(manifest: dict) -> dict:
    """The part of a manifest that must match for a resume."""
    ident = {key: manifest.get(key) for key in IDENTITY}
    for key, inner in NESTED_IDENTITY.items():
        ident[key] = {k: (manifest.get(key) or {}).get(k) for k in inner}
    return ident


def differences(old: dict, new: dict) -> list[str]:
    """Human lines for each identity value that changed, e.g. ``size: [1280, 720] -> [640, 360]``."""
    lines: list[str] = []

    def walk(a, b, name):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{name}.{key}" if name else key)
        elif a != b:
            lines.append(f"{name}: {_short(a)} -> {_short(b)}")

    walk(identity(old), identity(new), "")
    return lines


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    if isinstance(value, str) and len(value) == 64:  # a hash
        return value[:12] + "…"
    return text if len(text) <= 60 else text[:57] + "..."
