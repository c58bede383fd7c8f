"""Render a track with a style: frames to an EXR/PNG folder, an MP4, or both from one compute pass.

``render(audio, style, output, config=...)``: ``output`` is a folder (image sequence named
``<prefix><frame:06d>.<ext>``, frame number = Blender scene frame) or a path ending in ``.mp4``.
The main thread computes frames in order; a pool of writer threads encodes and writes frame n
while frame n+1 is computed, through bounded queues so memory stays flat for any song length.

A folder is resumable: its ``manifest.json`` records everything that shapes the frames; a rerun
with the same settings skips frames already on disk (every file is written atomically, so a
file at its final name is complete) and a rerun with other settings is refused unless
``overwrite``. Frames are pure functions of their inputs, so any range rendered alone gives
the same bytes as that range inside a full render.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from backend import __version__
from backend.model.cppn import Reactivity
from backend.errors import Conflict, InvalidInput
from backend.render.fast_cpu import default_threads
from backend.model.device import RENDER_KINDS, resolve_device
from backend.render.frame_renderer import FrameRenderer, check_size
from backend.atomic import check_writable, remove_stale_temps
from backend.writers.image import FrameSink, ImageFormat, image_header, image_is_whole, read_display
from backend.render.manifest import (FORMAT_VERSION, MANIFEST_NAME, differences, merge_ranges, now_iso,
                              read_manifest, write_manifest)
from backend.paths import file_sha256
from backend.progress import Progress, ProgressCallback, report
from backend.styles.library import Style, load_style
from backend.timebase import fps_label, frame_count, frame_count_for_seconds, frame_times, parse_fps
from backend.writers.video import AudioClip, VideoSettings, VideoSink, VideoWriter, check_video_size

SIZE_PRESETS = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080),
                "1440p": (2560, 1440), "4k": (3840, 2160)}
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")


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
    writer_threads: int | None = None  # image-writing threads; None: 2 on CPU (compute needs the cores), more with CUDA
    queue_frames: int = 4  # computed frames waiting for writers at most (bounds memory)
    cpu_threads: int | None = None  # CPU compute threads (default: one per core)
    video: VideoSettings = field(default_factory=VideoSettings)  # H.264/AAC quality

    def __post_init__(self):
        self.fps = parse_fps(self.fps)
        check_size(self.width, self.height)
        self.image_format()  # validates format, depth, compression
        if not isinstance(self.frame_start, int) or self.frame_start < 0:
            raise InvalidInput(f"frame start must be a whole number >= 0, got {self.frame_start!r}")
        if self.frames is not None:
            first, last = self.frames
            if first > last:
                raise InvalidInput(f"frame range must run forwards (A-B with A <= B), got {first}-{last}")
            self.frames = (int(first), int(last))
        if self.duration is not None and not 0 < self.duration < math.inf:
            raise InvalidInput(f"duration must be a finite number > 0 seconds, got {self.duration}")
        if not _PREFIX.match(self.prefix):
            raise InvalidInput(f"prefix may hold up to 64 letters, digits, '_', '-' or '.', got {self.prefix!r}")
        if (self.writer_threads is not None and self.writer_threads < 1) or self.queue_frames < 1:
            raise InvalidInput(f"writer threads and queue size must be >= 1, got {self.writer_threads} "
                               f"and {self.queue_frames}")

    def image_format(self) -> ImageFormat:
        return ImageFormat(kind=self.format, png_depth=self.png_depth, exr_compression=self.exr_compression,
                           alpha=self.alpha)

    def audio_config(self):
        """The :class:`~backend.audio.features.AudioConfig` of this render (fps, frame start, options)."""
        from backend.audio.features import AudioConfig  # loads the analysis code only when needed

        try:
            return AudioConfig(fps=self.fps, frame_start=self.frame_start, **self.audio_options)
        except TypeError as exc:
            raise InvalidInput(f"unknown audio analysis option: {exc}") from None

    def frame_settings(self) -> dict:
        """Every setting that changes the frame files (the manifest's ``settings``)."""
        settings = {"format": self.format, "alpha": self.alpha, "prefix": self.prefix, "seed": self.seed,
                    "reactivity": asdict(self.reactivity), "audio": self.audio_config().to_dict()}
        if self.format == "png":
            settings["png_depth"] = self.png_depth
        else:
            settings["exr_compression"] = self.exr_compression
        return settings


@dataclass
class RenderResult:
    output: Path  # the folder or the .mp4
    video: Path | None  # the MP4 written, if any
    manifest: Path | None  # the folder's manifest.json, if any
    first_frame: int  # scene frame numbers of the range
    last_frame: int
    frames_rendered: int  # computed in this call
    frames_skipped: int  # already on disk and valid
    elapsed_s: float  # the whole call, analysis included
    render_s: float  # computing and writing frames
    realtime_factor: float  # seconds of video computed per second of render_s
    device: str
    precision: str


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


def parse_frame_range(text: str) -> tuple[int, int]:
    """``100-200`` (inclusive scene frames) or a single frame ``150``."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if not match:
        raise InvalidInput(f"frames must be A-B (scene frame numbers, e.g. 1-250) or one frame, got {text!r}")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if first > last:
        raise InvalidInput(f"frame range must run forwards (A-B with A <= B), got {text!r}")
    return first, last


def frame_path(folder: Path, prefix: str, frame: int, extension: str) -> Path:
    return Path(folder) / f"{prefix}{frame:06d}{extension}"


def render(audio: str | os.PathLike, style: str | os.PathLike | Style, output: str | os.PathLike, *,
           config: RenderConfig | None = None, features=None, video: str | os.PathLike | None = None,
           styles_dir: Path | None = None, progress: ProgressCallback | None = None) -> RenderResult:
    """Render ``audio`` with ``style`` into ``output`` (a folder of frames, or a ``.mp4``).

    features: precomputed :class:`~backend.audio.files.Features` of ``audio`` with this
        render's AudioConfig (analysed here when None).
    video: also encode this MP4 from the same frames (with a folder ``output``).
    progress: receives "analyse" then "render" events (``info``: frame, fps); returning False cancels.
    Raises InvalidInput / NotFound / Conflict / DeviceUnavailable for problems the user can fix,
    all before any slow work where possible.
    """
    started = time.perf_counter()
    config = config or RenderConfig()
    output = Path(output)
    folder = None if output.suffix.lower() == ".mp4" else output
    if folder is None and video is not None:
        raise InvalidInput(f"the output {output} is already an MP4; 'video' adds an MP4 to a folder of frames")
    video_path = output if folder is None else (Path(video) if video is not None else None)
    fmt = config.image_format()
    device = str(resolve_device(config.device, RENDER_KINDS))  # "cpu", "cuda" or "cuda:N", as the manifest records it
    audio_config = config.audio_config()
    loaded = style if isinstance(style, Style) else load_style(style, styles_dir=styles_dir)
    from backend.audio.io import probe_audio  # audio code loads only when a render really starts

    audio_path = Path(audio)
    info = probe_audio(audio_path)
    track, (first, last) = _frame_range(config, frame_count(info.n_samples, info.sample_rate, config.fps))
    _check_outputs(folder, video_path, config)  # creates the folder: only once the inputs are known good

    manifest = None
    skip: set[int] = set()
    if folder is not None:
        manifest = _prepare_folder(folder, config, fmt, _new_manifest(config, audio_path, info, loaded, track, device))
        skip = set() if config.overwrite else _frames_on_disk(folder, config, fmt, first, last, manifest["ranges"])

    nothing_to_do = video_path is None and len(skip) == last - first + 1
    if features is None and not nothing_to_do:
        from backend.audio.features import analyze

        features = analyze(audio_path, config=audio_config, progress=progress)
    if features is not None:
        _check_features(features, audio_config)
        # The decoded length is the truth (a container's header may round): check the range again.
        track, (first, last) = _frame_range(config, len(features.values))
        if manifest is not None:
            manifest["track"] = {"first": track[0], "last": track[1], "count": track[1] - track[0] + 1}

    renderer = FrameRenderer(loaded, width=config.width, height=config.height, device=device,
                             reactivity=config.reactivity, seed=config.seed, threads=config.cpu_threads)
    numbers = np.arange(first, last + 1)
    todo = np.array([n for n in numbers if n not in skip], dtype=np.int64)
    rows = todo - config.frame_start  # rows of the feature table
    computed = renderer.frames(frame_times(track[1] - track[0] + 1, config.fps)[rows],
                               np.asarray(features.values, np.float32)[rows]) if len(todo) else iter(())
    writer = video_sink = None
    loop_started = time.perf_counter()
    try:
        if folder is not None and len(todo):
            writer = FrameSink(fmt, threads=_writer_threads(config.writer_threads, device),
                               queue_frames=max(config.queue_frames, renderer.batch_size))
        if video_path is not None:
            video_sink = VideoSink(_video_writer(video_path, config, audio_path, info.duration, first, last),
                                   queue_frames=config.queue_frames)
        path_of = (lambda n: frame_path(folder, config.prefix, n, fmt.extension)) if folder is not None else None
        rendered = _stream_frames(numbers, skip, computed, path_of, writer, video_sink, progress)
        if writer is not None:
            writer.finish()
        if video_sink is not None:
            video_sink.finish()
    finally:
        renderer.close()
        if writer is not None:
            writer.close()
        if video_sink is not None:
            video_sink.close()
    render_s = time.perf_counter() - loop_started
    if manifest is not None:  # every frame of the range is on disk now: record it
        manifest["ranges"] = merge_ranges(manifest["ranges"] + [[int(first), int(last)]])
        manifest["updated"] = now_iso()
        write_manifest(folder, manifest)
    return RenderResult(output=output, video=video_path, manifest=folder / MANIFEST_NAME if folder else None,
                        first_frame=int(first), last_frame=int(last), frames_rendered=rendered,
                        frames_skipped=len(skip), elapsed_s=time.perf_counter() - started, render_s=render_s,
                        realtime_factor=float(rendered / config.fps) / render_s if rendered else 0.0,
                        device=renderer.device, precision=renderer.precision)


def _stream_frames(numbers, skip: set[int], computed, path_of, writer: FrameSink | None,
                   video_sink: VideoSink | None, progress) -> int:
    """Walk the range in order: new frames go to the writers (and the video), frames on disk only to
    the video (read back). Returns how many frames were computed."""
    rendered = 0
    started = time.perf_counter()
    report(progress, Progress("render", 0, len(numbers), f"{len(skip)} frames already on disk",
                              info={"skipped": len(skip)}))
    for done, number in enumerate(numbers, start=1):
        if number in skip:
            if video_sink is not None:
                video_sink.put(read_display(path_of(number)))
        else:
            colour = next(computed)  # (H, W, C) display colour
            rendered += 1
            if writer is not None:
                writer.put(path_of(number), colour)
            if video_sink is not None:
                video_sink.put(colour)
        rate = rendered / max(time.perf_counter() - started, 1e-9)
        report(progress, Progress("render", done, len(numbers), f"frame {number}",
                                  info={"frame": int(number), "fps": rate, "skipped": len(skip)}))
    return rendered


def _writer_threads(requested: int | None, device: str) -> int:
    if requested is not None:
        return requested
    if device == "cpu":
        return 2  # the CPU evaluator already uses every core; writing is ~10% of the work
    return max(2, min(16, default_threads() - 1))  # a GPU outruns one writer many times over


def _check_outputs(folder: Path | None, video_path: Path | None, config: RenderConfig) -> None:
    if video_path is not None:
        check_video_size(config.width, config.height)
        if folder is None and config.alpha:
            raise InvalidInput("MP4 has no alpha channel; drop --alpha or render to a folder of EXR/PNG frames")
        if folder is None and video_path.exists() and not config.overwrite:
            raise Conflict(f"{video_path} already exists", fix="use --overwrite to replace it")
        check_writable(video_path.parent, create=True)
        remove_stale_temps(video_path.parent)  # an MP4 left unfinished by a killed render
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise InvalidInput(f"output {folder} is a file; give a folder for frames or a path ending in .mp4")
        check_writable(folder, create=True)


def _frame_range(config: RenderConfig, n_frames: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The track's scene frames (first, last) for ``n_frames`` of audio, and the range to render."""
    if config.duration is not None:
        n_frames = min(n_frames, frame_count_for_seconds(config.duration, config.fps))
    track = (config.frame_start, config.frame_start + n_frames - 1)
    first, last = config.frames or track
    if first < track[0] or last > track[1]:
        raise InvalidInput(f"frames {first}-{last} are outside the track: it has frames {track[0]}-{track[1]} "
                           f"({n_frames} frames, {float(n_frames / config.fps):.2f} s at {fps_label(config.fps)} "
                           f"fps from frame {config.frame_start})")
    return track, (first, last)


def _video_writer(path: Path, config: RenderConfig, audio_path: Path, audio_s: float, first: int,
                  last: int) -> VideoWriter:
    """An MP4 writer for frames first..last with the audio they show; it ends where the audio does."""
    start = (first - config.frame_start) / config.fps
    end = min(Fraction(audio_s), (last + 1 - config.frame_start) / config.fps)
    if config.duration is not None:
        end = min(end, Fraction(config.duration))
    clip = AudioClip(audio_path, start_s=float(start), end_s=float(end))
    return VideoWriter(path, width=config.width, height=config.height, fps=config.fps, audio=clip,
                       frame_count=last - first + 1, settings=config.video)


def _check_features(features, audio_config) -> None:
    """Precomputed features must be what this render would have analysed."""
    if features.config and features.config != audio_config.to_dict():
        raise InvalidInput("the features given were analysed with other settings than this render's "
                           f"(fps {features.config.get('fps')}, frame start {features.config.get('frame_start')}, "
                           "smoothing, ...); analyse again with the render's AudioConfig")


def _new_manifest(config: RenderConfig, audio_path: Path, info, style: Style, track, device) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "audio": {"path": str(audio_path.resolve()), "sha256": file_sha256(audio_path),
                  "duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels},
        "fps": fps_label(config.fps),
        "size": [config.width, config.height],
        "frame_start": config.frame_start,
        "style": {"name": style.name, "kind": style.kind, "sha256": style.sha256,
                  "path": str(style.path) if style.path else None},
        "settings": config.frame_settings(),
        "pattern": f"{config.prefix}%06d.{config.format}",
        "track": {"first": track[0], "last": track[1], "count": track[1] - track[0] + 1},
        "ranges": [],  # inclusive [first, last] scene frame ranges finished so far
        "device": device,
        "created": now_iso(),
        "updated": now_iso(),
    }


def _prepare_folder(folder: Path, config: RenderConfig, fmt: ImageFormat, new: dict) -> dict:
    """Compare with the folder's manifest (refuse or clear on change), clean up, write the manifest."""
    old = read_manifest(folder)
    if old is None:
        strays = sorted(_frame_files(folder, config.prefix, fmt.extension))[:3]
        if strays and not config.overwrite:
            raise Conflict(f"{folder} already holds frames ({', '.join(p.name for p in strays)}, ...) "
                           "but no manifest.json, so their settings are unknown",
                           fix="use --overwrite to replace them, or choose another folder")
    else:
        changed = differences(old, new)
        if changed and not config.overwrite:
            raise Conflict(f"{folder} was rendered with other settings ({'; '.join(changed)})",
                           fix="use --overwrite to re-render it with the new settings, or choose another folder")
        if changed:  # overwrite: frames of the old settings must not mix with the new ones
            old_prefix = (old.get("settings") or {}).get("prefix", config.prefix)
            old_ext = "." + (old.get("settings") or {}).get("format", config.format)
            for path in _frame_files(folder, old_prefix, old_ext):
                path.unlink(missing_ok=True)
        else:
            new["ranges"] = merge_ranges(old.get("ranges", []))
            new["created"] = old.get("created", new["created"])
    remove_stale_temps(folder)
    write_manifest(folder, new)  # ranges: only what earlier renders finished; this one adds its own at the end
    return new


def _frame_files(folder: Path, prefix: str, extension: str) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(prefix)}\d{{6,}}{re.escape(extension)}$")
    return [p for p in folder.iterdir() if pattern.match(p.name)] if folder.is_dir() else []


def _frames_on_disk(folder: Path, config: RenderConfig, fmt: ImageFormat, first: int, last: int,
                    finished: list[list[int]]) -> set[int]:
    """Frames in the range whose file exists with the expected size, channels and pixel type.

    Frames of ranges a render finished are trusted on their header; any other frame (left by a
    render that was killed or cancelled) must also decode whole before it counts as done.
    """
    expected = (config.width, config.height, fmt.channels, fmt.pixel_type)
    present = {p.name for p in _frame_files(folder, config.prefix, fmt.extension)}
    done = set()
    for n in range(first, last + 1):
        path = frame_path(folder, config.prefix, n, fmt.extension)
        if path.name not in present:
            continue
        trusted = any(a <= n <= b for a, b in finished)
        if image_header(path) == expected if trusted else image_is_whole(path, expected):
            done.add(n)
    return done
