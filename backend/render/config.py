"""Render settings: :class:`RenderConfig` and the parsers of the command line's size and frame range.

Every value is bounded where it is set (never an OverflowError after an hour of work): whole
numbers by :func:`bounded_int`, sizes by ``check_size``, fps by ``parse_fps``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from backend.errors import InvalidInput
from backend.model.cppn import Reactivity
from backend.render.frame_renderer import check_size
from backend.timebase import parse_fps
from backend.writers.image import ImageFormat
from backend.writers.video import VideoSettings

SIZE_PRESETS = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080),
                "1440p": (2560, 1440), "4k": (3840, 2160)}
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")
MAX_FRAME = 99_999_999  # scene frame numbers (Blender itself stops at 1048574)
MAX_SEED = 2**31 - 1
MAX_THREADS = 1024
PREVIEW_ANALYSIS_S = 30.0  # --duration analyses at least this much of a longer track (normalisation context)


@dataclass
class RenderConfig:
    """Settings of one render; the ones that shape the frames are recorded in the manifest."""

    width: int = 1280  # frame width in pixels
    height: int = 720  # frame height in pixels
    fps: Fraction = Fraction(30)  # frames per second, exact (29.97 is 30000/1001)
    frame_start: int = 1  # scene frame number showing the audio's first instant
    frames: tuple[int, int] | None = None  # inclusive scene frame range to render; None = whole track
    duration: float | None = None  # render only the first SECONDS of the track; None = all of it
    format: str = "exr"  # "exr" (half, scene-linear) or "png" (sRGB)
    png_depth: int = 8  # PNG bits per channel: 8 or 16
    exr_compression: str = "zip"  # EXR compression: zip, piz, dwaa (lossy) or none
    alpha: bool = False  # a meaningful alpha channel (the style's 4th channel, else luma)
    prefix: str = "frame_"  # file name before the frame number
    seed: int = 0  # variation seed: shifts the slow time drift (0 = none)
    device: str = "auto"  # auto, cpu (FP32), cuda or cuda:N (FP16)
    reactivity: Reactivity = field(default_factory=Reactivity)  # how the music moves the picture
    audio_options: dict = field(default_factory=dict)  # more AudioConfig fields, e.g. {"smoothing": {...}}
    overwrite: bool = False  # replace existing frames / a folder rendered with other settings
    verify: bool = False  # decode every frame already on disk before skipping it (default: a cheap check)
    writer_threads: int | None = None  # image-writing threads; None: 2 on CPU (compute needs the cores), more with CUDA
    queue_frames: int = 4  # computed frames waiting for writers at most (bounds memory)
    cpu_threads: int | None = None  # CPU compute threads (default: one per core)
    video: VideoSettings = field(default_factory=VideoSettings)  # H.264/AAC quality

    def __post_init__(self):
        self.fps = parse_fps(self.fps)
        check_size(self.width, self.height)
        self.image_format()  # validates format, depth, compression
        self.frame_start = bounded_int(self.frame_start, "frame start", 0, MAX_FRAME)
        if self.frames is not None:
            if not isinstance(self.frames, (tuple, list)) or len(self.frames) != 2:
                raise InvalidInput(f"frames must be a (first, last) pair, got {self.frames!r}")
            first, last = (bounded_int(n, "frame numbers", 0, MAX_FRAME) for n in self.frames)
            if first > last:
                raise InvalidInput(f"frame range must run forwards (A-B with A <= B), got {first}-{last}")
            self.frames = (first, last)
        if self.duration is not None:
            if not isinstance(self.duration, (int, float)) or not 0 < self.duration < math.inf:
                raise InvalidInput(f"duration must be a finite number > 0 seconds, got {self.duration}")
        self.seed = bounded_int(self.seed, "seed", -MAX_SEED, MAX_SEED)
        if not isinstance(self.prefix, str) or not _PREFIX.match(self.prefix):
            raise InvalidInput(f"prefix may hold up to 64 letters, digits, '_', '-' or '.', got {self.prefix!r}")
        if self.writer_threads is not None:
            self.writer_threads = bounded_int(self.writer_threads, "writer threads", 1, MAX_THREADS)
        if self.cpu_threads is not None:
            self.cpu_threads = bounded_int(self.cpu_threads, "CPU threads", 1, MAX_THREADS)
        self.queue_frames = bounded_int(self.queue_frames, "queue size", 1, MAX_THREADS)
        if not isinstance(self.reactivity, Reactivity) or not isinstance(self.video, VideoSettings):
            raise InvalidInput("reactivity and video must be Reactivity and VideoSettings objects")
        if not isinstance(self.audio_options, dict):
            raise InvalidInput(f"audio options must be a dict of AudioConfig fields, got {self.audio_options!r}")

    def image_format(self) -> ImageFormat:
        return ImageFormat(kind=self.format, png_depth=self.png_depth, exr_compression=self.exr_compression,
                           alpha=self.alpha)

    def analysis_span(self, track_seconds: float | None) -> float | None:
        """Seconds of the track to analyse: None for all of it; with ``duration``, the rendered part
        but at least PREVIEW_ANALYSIS_S (the per-track normalisation needs some context)."""
        if self.duration is None or track_seconds is None:
            return None
        span = max(float(self.duration), PREVIEW_ANALYSIS_S)
        return span if span < track_seconds else None

    def audio_config(self, track_seconds: float | None = None):
        """The :class:`~backend.audio.features.AudioConfig` of this render (fps, frame start, options,
        and the span analysed for a track of ``track_seconds``)."""
        from backend.audio.features import AudioConfig  # loads the analysis code only when needed

        options = {"span_seconds": self.analysis_span(track_seconds), **self.audio_options}
        try:
            return AudioConfig(fps=self.fps, frame_start=self.frame_start, **options)
        except TypeError as exc:
            raise InvalidInput(f"unknown audio analysis option: {exc}") from None

    def frame_settings(self, track_seconds: float | None = None) -> dict:
        """Every setting that changes the frame files (the manifest's ``settings``)."""
        settings = {"format": self.format, "alpha": self.alpha, "prefix": self.prefix, "seed": self.seed,
                    "reactivity": asdict(self.reactivity), "audio": self.audio_config(track_seconds).to_dict()}
        if self.format == "png":
            settings["png_depth"] = self.png_depth
        else:
            settings["exr_compression"] = self.exr_compression
        return settings


def parse_size(text: str) -> tuple[int, int]:
    """``1280x720`` or a preset (360p, 480p, 720p, 1080p, 1440p, 4k) -> (width, height)."""
    key = str(text).strip().lower()
    if key in SIZE_PRESETS:
        return SIZE_PRESETS[key]
    match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", key)
    if not match:
        raise InvalidInput(f"size must be WIDTHxHEIGHT like 1280x720 or one of {', '.join(SIZE_PRESETS)}, "
                           f"got {text!r}")
    return check_size(int(match.group(1)), int(match.group(2)))


def bounded_int(value, what: str, low: int, high: int) -> int:
    """``value`` as an int within [low, high], else one clear InvalidInput (never an OverflowError later)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "..."
        raise InvalidInput(f"{what} must be a whole number from {low} to {high}, got {shown}")
    return int(value)


def parse_frame_range(text: str) -> tuple[int, int]:
    """``100-200`` (inclusive scene frames) or a single frame ``150``."""
    match = re.fullmatch(r"\s*(\d{1,20})\s*(?:-\s*(\d{1,20})\s*)?", str(text))
    if not match:
        raise InvalidInput(f"frames must be A-B (scene frame numbers, e.g. 1-250) or one frame, got {str(text)[:40]!r}")
    first = bounded_int(int(match.group(1)), "frame numbers", 0, MAX_FRAME)
    last = bounded_int(int(match.group(2)), "frame numbers", 0, MAX_FRAME) if match.group(2) is not None else first
    if first > last:
        raise InvalidInput(f"frame range must run forwards (A-B with A <= B), got {text!r}")
    return first, last
