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

import contextlib
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from backend.errors import InvalidInput, NoSpace
from backend.paths import file_fingerprint, file_sha256
from backend.progress import Progress, ProgressCallback, report
from backend.render.config import (MAX_FRAME, PREVIEW_ANALYSIS_S, SIZE_PRESETS, RenderConfig,  # noqa: F401 (API)
                                   bounded_int, parse_frame_range, parse_size)
from backend.render.fast_cpu import default_threads
from backend.render.frame_renderer import FrameRenderer
from backend.render.output_folder import OutputFolder, frame_path  # noqa: F401 (frame_path: part of this API)
from backend.render.request import RenderRequest, VideoTarget, check_render_request, frame_range  # noqa: F401
from backend.styles.library import Style
from backend.timebase import frame_times
from backend.writers.image import FrameSink, read_display
from backend.writers.video import AudioClip, VideoSink, VideoWriter


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


def render(audio: str | os.PathLike, style: str | os.PathLike | Style, output: str | os.PathLike, *,
           config: RenderConfig | None = None, features=None, video: str | os.PathLike | None = None,
           styles_dir: Path | None = None, progress: ProgressCallback | None = None) -> RenderResult:
    """Render ``audio`` with ``style`` into ``output`` (a folder of frames, or a ``.mp4``).

    features: precomputed :class:`~backend.audio.features.Features` of ``audio`` with this
        render's AudioConfig (analysed here when None).
    video: also encode this MP4 from the same frames (with a folder ``output``).
    progress: receives "analyse" then "render" events (``info``: frame, fps); returning False cancels.
    Raises InvalidInput / NotFound / Conflict / DeviceUnavailable for problems the user can fix,
    all before any slow work (see :func:`check_render_request`). The output is locked for the
    whole run: a second writer gets Conflict at once, naming this process.
    """
    started = time.perf_counter()
    request = check_render_request(audio, style, output, config=config, video=video, styles_dir=styles_dir)
    config, folder_path, video_path = request.config, request.folder, request.video
    fmt = config.image_format()
    audio_config = config.audio_config(request.audio_info.duration)
    with contextlib.ExitStack() as stack:
        folder = None
        if folder_path is not None:
            folder = stack.enter_context(OutputFolder(folder_path, prefix=config.prefix, fmt=fmt,
                                                      overwrite=config.overwrite))
            folder.prepare(request.manifest())  # again, now that no one else can change the folder
        if video_path is not None:
            stack.enter_context(VideoTarget(video_path, folder_path, config))
        first, last = request.frames
        skip = folder.frames_done(first, last, verify=config.verify) if folder is not None else set()
        nothing_to_do = video_path is None and len(skip) == last - first + 1
        if features is None and not nothing_to_do:
            from backend.audio.features import analyze

            features = analyze(request.audio, config=audio_config, progress=progress)
        track = request.track
        if features is not None:
            _check_features(features, audio_config)
            # The decoded length is the truth (a container's header may round): check the range again.
            track, (first, last) = frame_range(config, len(features.values))
            if folder is not None:
                folder.manifest["track"] = {"first": track[0], "last": track[1], "count": track[1] - track[0] + 1}
                if audio_config.span_seconds is None and "sha256" not in folder.manifest["audio"]:
                    folder.manifest["audio"]["sha256"] = file_sha256(request.audio)  # the add-on finds moved audio by it
        rendered, render_s, device, precision = _render_frames(request, folder, video_path, features, track,
                                                               (first, last), skip, progress)
        if folder is not None:  # every frame of the range is on disk now: record it
            if video_path is not None:
                folder.manifest["video"] = {"path": str(video_path.resolve()),
                                            "fingerprint": file_fingerprint(video_path)}
            folder.finish_range(first, last)
    return RenderResult(output=request.output, video=video_path,
                        manifest=folder.manifest_path if folder is not None else None,
                        first_frame=int(first), last_frame=int(last), frames_rendered=rendered,
                        frames_skipped=len(skip), elapsed_s=time.perf_counter() - started, render_s=render_s,
                        realtime_factor=float(rendered / config.fps) / render_s if rendered else 0.0,
                        device=device, precision=precision)


def _render_frames(request: RenderRequest, folder: OutputFolder | None, video_path: Path | None, features,
                   track, frames: tuple[int, int], skip: set[int], progress) -> tuple[int, float, str, str]:
    """Compute the frames not in ``skip``, write them (and the video); returns (computed, seconds, device, precision)."""
    config, (first, last) = request.config, frames
    renderer = FrameRenderer(request.style, width=config.width, height=config.height, device=request.device,
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
            folder.start()  # the manifest appears with the first frame, never before
            writer = FrameSink(config.image_format(), threads=_writer_threads(config.writer_threads, request.device),
                               queue_frames=max(config.queue_frames, renderer.batch_size))
        if video_path is not None:
            video_sink = VideoSink(_video_writer(video_path, config, request.audio, request.audio_info.duration,
                                                 first, last), queue_frames=config.queue_frames)
        path_of = folder.frame_path if folder is not None else None
        try:
            rendered = _stream_frames(numbers, skip, computed, path_of, writer, video_sink, progress)
            if writer is not None:
                writer.finish()
        except NoSpace as exc:
            raise _with_space_needed(exc, folder, first, last) from None
        if video_sink is not None:
            video_sink.finish()
    finally:
        renderer.close()
        if writer is not None:
            writer.close()
        if video_sink is not None:
            video_sink.close()
    return rendered, time.perf_counter() - loop_started, renderer.device, renderer.precision


def _with_space_needed(exc: NoSpace, folder: OutputFolder | None, first: int, last: int) -> NoSpace:
    """Say how much more room the render needs, from the size of the frames on disk."""
    sizes = folder.frame_sizes(first, last) if folder is not None else []
    if not sizes:
        return exc
    missing = last - first + 1 - len(sizes)
    needed = missing * (sum(sizes) / len(sizes)) / 1e6
    return NoSpace(f"{exc.message}: {missing} frames are missing, about {max(needed, 1):.0f} MB more is needed",
                   fix=exc.fix)


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
