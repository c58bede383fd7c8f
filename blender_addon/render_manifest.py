"""Read a render folder's ``manifest.json`` into a :class:`RenderInfo` (plain Python, no bpy).

The backend writes the manifest (``backend/render/manifest.py``); this module is its reader on the
Blender side, so it checks every field it relies on and says what was expected when one is off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

MANIFEST_NAME = "manifest.json"
SUPPORTED_FORMAT_VERSION = 1
FORMATS = ("exr", "png")
MAX_BLENDER_FPS = 32767  # RenderSettings.fps is a short in Blender
_KIND_WORDS = {str: "a string", int: "a whole number", list: "a list", dict: "an object"}


class RenderFolderError(Exception):
    """A render folder the add-on cannot load; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class RenderInfo:
    """What a render folder holds, as the manifest describes it."""

    folder: Path  # the render folder (absolute)
    fps: Fraction  # exact frame rate; 29.97 is 30000/1001
    width: int  # frame width in pixels
    height: int  # frame height in pixels
    frame_start: int  # scene frame that shows the audio's first instant
    first: int  # first rendered scene frame
    last: int  # last rendered scene frame
    ranges: tuple[tuple[int, int], ...]  # rendered inclusive ranges, sorted
    file_format: str  # "exr" (scene-linear half float) or "png" (sRGB)
    prefix: str  # file name before the 6-digit frame number
    alpha: bool  # frames carry a meaningful alpha channel
    audio_path: Path  # where the audio was when it was rendered
    audio_sha256: str  # hash of the audio file, to recognise it elsewhere
    audio_channels: int  # channel count of the audio (for the encode's channel layout)
    style_name: str  # the style the frames were rendered with

    @property
    def frame_count(self) -> int:
        return self.last - self.first + 1

    @property
    def extension(self) -> str:
        return f".{self.file_format}"

    def frame_name(self, frame: int) -> str:
        """File name of scene frame ``frame``, e.g. ``frame_000012.exr``."""
        return f"{self.prefix}{frame:06d}{self.extension}"

    def frame_path(self, frame: int) -> Path:
        return self.folder / self.frame_name(frame)


def parse_fps(text) -> Fraction:
    """``"30"`` or ``"30000/1001"`` (as the backend writes it) -> an exact positive Fraction."""
    try:
        fps = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise RenderFolderError(f"fps must be a number like 30 or 30000/1001, got {text!r}") from None
    if fps <= 0 or fps > MAX_BLENDER_FPS:
        raise RenderFolderError(f"fps must be > 0 and at most {MAX_BLENDER_FPS}, got {text}")
    return fps


def blender_fps(fps: Fraction) -> tuple[int, float]:
    """Blender's ``(render.fps, render.fps_base)`` for an exact rate: ``fps / fps_base == fps`` exactly.

    Blender's own presets spell 29.97 as 30 / 1.001, so the integer part is the rounded rate and
    the base carries the fraction: 30000/1001 -> (30, 1.001), 25 -> (25, 1.0), 12.5 -> (12, 0.96).
    """
    whole = max(1, round(fps))
    return whole, float(whole / fps)


def read_render_folder(folder: str | Path, *, frames: tuple[int, int] | None = None) -> RenderInfo:
    """Parse and check ``folder/manifest.json``; raises :class:`RenderFolderError` with the reason.

    ``frames``: the (first, last) scene frames of a render still running, whose manifest lists only
    finished ranges (none yet, at first); the result then spans that range.
    """
    if not str(folder).strip():
        raise RenderFolderError("no render folder given; choose the folder a render was written to")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise RenderFolderError(f"{folder} is not a folder; choose the folder a render was written to")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise RenderFolderError(f"{folder} has no {MANIFEST_NAME}; choose a folder written by "
                                "'audio-cppn render AUDIO -o FOLDER'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RenderFolderError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise RenderFolderError(f"{path} is not an audio-cppn render manifest")
    version = data["format_version"]
    if version != SUPPORTED_FORMAT_VERSION:
        raise RenderFolderError(f"{path} has manifest format {version!r}; this add-on reads format "
                                f"{SUPPORTED_FORMAT_VERSION} (update the add-on to match the backend)")
    return _render_info(folder, path, data, frames)


def _render_info(folder: Path, path: Path, data: dict, frames=None) -> RenderInfo:
    def field(name, kind, where=data, label=None):
        value = where.get(name) if isinstance(where, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RenderFolderError(f"{path}: '{label or name}' must be {_KIND_WORDS[kind]}, got {value!r}")
        return value

    settings = field("settings", dict)
    audio = field("audio", dict)
    style = data.get("style") if isinstance(data.get("style"), dict) else {}
    size = field("size", list)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise RenderFolderError(f"{path}: 'size' must be [width, height] in pixels, got {size!r}")
    file_format = field("format", str, settings, "settings.format")
    if file_format not in FORMATS:
        raise RenderFolderError(f"{path}: 'settings.format' must be exr or png, got {file_format!r}")
    ranges = _ranges(path, field("ranges", list), allow_empty=frames is not None)
    first, last = frames if frames is not None else (ranges[0][0], ranges[-1][1])
    return RenderInfo(
        folder=folder, fps=parse_fps(field("fps", str)), width=size[0], height=size[1],
        frame_start=field("frame_start", int), first=int(first), last=int(last), ranges=ranges,
        file_format=file_format, prefix=field("prefix", str, settings, "settings.prefix"),
        alpha=bool(settings.get("alpha", False)),
        audio_path=Path(field("path", str, audio, "audio.path")),
        audio_sha256=str(audio.get("sha256") or ""), audio_channels=int(audio.get("channels") or 2),
        style_name=str(style.get("name") or "unknown"))


def _ranges(path: Path, ranges: list, *, allow_empty: bool = False) -> tuple[tuple[int, int], ...]:
    """Rendered ranges as sorted (first, last) pairs; at least one unless ``allow_empty``."""
    pairs = []
    for item in ranges:
        if (not isinstance(item, list) or len(item) != 2 or not all(isinstance(v, int) for v in item)
                or item[0] > item[1]):
            raise RenderFolderError(f"{path}: 'ranges' must hold [first, last] frame pairs, got {item!r}")
        pairs.append((item[0], item[1]))
    if not pairs and not allow_empty:
        raise RenderFolderError(f"{path} lists no rendered frames; finish the render first")
    return tuple(sorted(pairs))
