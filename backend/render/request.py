"""What a render is asked to do, checked whole before any slow work: :func:`check_render_request`.

The service calls it before queueing a job, :func:`~backend.render.job.render` at its start; it
reads headers (audio, style), never analyses audio and never writes. It also holds the rules for
an MP4 target: never a folder, never the input audio, never an existing file unless ``overwrite``
or it is the video this folder's last render wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from backend import __version__
from backend.atomic import check_parent_writable, check_writable, create_folders, remove_created, remove_stale_temps
from backend.errors import Conflict, InvalidInput
from backend.paths import file_fingerprint
from backend.render.config import RenderConfig
from backend.render.folder_lock import OutputLock, locked_by
from backend.model.device import RENDER_KINDS, resolve_device
from backend.render.manifest import FORMAT_VERSION, MANIFEST_NAME, now_iso, read_manifest
from backend.render.output_folder import OutputFolder
from backend.styles.library import Style, load_style
from backend.timebase import fps_label, frame_count, frame_count_for_seconds
from backend.user_paths import check_not_special, check_path_names, kind_of
from backend.writers.video import check_video_size


@dataclass
class RenderRequest:
    """A render whose every argument was checked (by :func:`check_render_request`); nothing analysed yet."""

    audio: Path
    audio_info: object  # backend.audio.io.AudioInfo, from the file's header
    audio_fingerprint: str
    style: Style
    output: Path
    folder: Path | None  # the frame folder, or None for an .mp4 output
    video: Path | None  # the MP4 to write, if any
    config: RenderConfig
    device: str
    track: tuple[int, int]  # scene frames of the track (from the header; the decoded length confirms it)
    frames: tuple[int, int]  # the range to render

    def manifest(self) -> dict:
        """This render's manifest for its folder: everything that shapes the frames, no ranges yet."""
        config, info, track = self.config, self.audio_info, self.track
        return {
            "format_version": FORMAT_VERSION,
            "version": __version__,
            "audio": {"path": str(self.audio.resolve()), "fingerprint": self.audio_fingerprint,
                      "duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels},
            "fps": fps_label(config.fps),
            "size": [config.width, config.height],
            "frame_start": config.frame_start,
            "style": {"name": self.style.name, "kind": self.style.kind, "sha256": self.style.sha256,
                      "path": str(self.style.path) if self.style.path else None},
            "settings": config.frame_settings(info.duration),
            "pattern": f"{config.prefix}%06d.{config.format}",
            "track": {"first": track[0], "last": track[1], "count": track[1] - track[0] + 1},
            "ranges": [],  # inclusive [first, last] scene frame ranges finished so far
            "device": self.device,
            "created": now_iso(),
            "updated": now_iso(),
        }


def check_render_request(audio: str | os.PathLike, style: str | os.PathLike | Style, output: str | os.PathLike, *,
                         config: RenderConfig | None = None, video: str | os.PathLike | None = None,
                         styles_dir: Path | None = None) -> RenderRequest:
    """Everything :func:`render` checks before slow work, without analysing audio or writing anything.

    Path names and kinds, the audio's header, the style (header first, then its weights), the
    device, the frame range against the track, the outputs (an MP4 that exists, is the input
    audio or is a folder; a folder of other settings without ``overwrite``; an output another
    process is writing now). The service calls it before queueing a job; :func:`render` calls it
    again and repeats the folder checks under the output's lock.
    """
    config = config or RenderConfig()
    if not isinstance(config, RenderConfig):
        raise InvalidInput(f"config must be a RenderConfig, got {type(config).__name__}")
    if not str(output).strip():
        raise InvalidInput("the output path is empty; give a folder for frames or a path ending in .mp4")
    audio_path = check_path_names(audio, "audio")
    output = check_path_names(output, "output")
    video_path = check_path_names(video, "--video") if video is not None else None
    if styles_dir is not None:
        check_path_names(styles_dir, "style library")
    folder = None if output.suffix.lower() == ".mp4" else output
    if folder is None and video_path is not None:
        raise InvalidInput(f"the output {output} is already an MP4; 'video' adds an MP4 to a folder of frames")
    if video_path is not None and video_path.suffix.lower() != ".mp4":
        raise InvalidInput(f"--video {video_path} must end in .mp4", fix="name the video file like clip.mp4")
    video_path = output if folder is None else video_path
    device = str(resolve_device(config.device, RENDER_KINDS))  # "cpu", "cuda" or "cuda:N", as the manifest records it
    config.audio_config()  # the analysis options are valid
    from backend.audio.io import probe_audio  # audio code loads only when a render really starts

    loaded = style if isinstance(style, Style) else load_style(style, styles_dir=styles_dir)
    info = probe_audio(audio_path)
    track, frames = frame_range(config, frame_count(info.n_samples, info.sample_rate, config.fps))
    if video_path is not None:
        _check_video_target(video_path, audio_path, config, folder)
    if folder is not None:
        _check_folder_target(folder)
    request = RenderRequest(audio=audio_path, audio_info=info, audio_fingerprint=file_fingerprint(audio_path),
                            style=loaded, output=output, folder=folder, video=video_path, config=config,
                            device=device, track=track, frames=frames)
    for target in (folder, video_path):
        if target is not None and (pid := locked_by(target)) is not None:
            who = f"process {pid}" if pid else "another process"
            raise Conflict(f"{target} is being written by {who} right now",
                           fix="wait for that render to finish or cancel it, or choose another output")
    if folder is not None and folder.is_dir():  # advisory here; render() decides again under the lock
        OutputFolder(folder, prefix=config.prefix, fmt=config.image_format(),
                     overwrite=config.overwrite).prepare(request.manifest())
    if video_path is not None:
        check_video_replaceable(video_path, folder, config)
    return request


class VideoTarget:
    """Holds an MP4 output for one run: its folder made, its lock taken, the existence rule checked again."""

    def __init__(self, path: Path, folder: Path | None, config: RenderConfig):
        self.path, self.folder, self.config = path, folder, config
        self._lock = OutputLock(path)
        self._created: list[Path] = []

    def __enter__(self) -> "VideoTarget":
        self._created = create_folders(self.path.parent)
        try:
            check_writable(self.path.parent)
            self._lock.acquire()
            check_video_replaceable(self.path, self.folder, self.config)  # again, under the lock
            remove_stale_temps(self.path.parent)  # an MP4 left unfinished by a killed render
        except BaseException:
            self._lock.release()
            remove_created(self._created)
            raise
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self._lock.release()
        if kind is not None:
            remove_created(self._created)


def _check_video_target(video_path: Path, audio_path: Path, config: RenderConfig, folder: Path | None) -> None:
    """An MP4 path that can be written: even size, no alpha, not a folder, never the input audio."""
    check_video_size(config.width, config.height)
    if folder is None and config.alpha:
        raise InvalidInput("MP4 has no alpha channel; drop --alpha or render to a folder of EXR/PNG frames")
    check_parent_writable(video_path)
    if video_path.is_dir():
        raise InvalidInput(f"{video_path} is a folder; an MP4 output must be a file",
                           fix="give a file path ending in .mp4, or render frames into a folder without .mp4")
    check_not_special(video_path, "video output")
    if _same_file(video_path, audio_path):
        raise InvalidInput(f"the video output {video_path} is the input audio file; it would be overwritten",
                           fix="give the video another name")
    if folder is not None and _same_file(video_path, folder):
        raise InvalidInput(f"--video {video_path} is the frame folder itself")


def _check_folder_target(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"output {folder} is {kind_of(folder.stat().st_mode)}; give a folder for frames or a "
                           "path ending in .mp4")
    check_parent_writable(folder / MANIFEST_NAME)


def check_video_replaceable(video_path: Path, folder: Path | None, config: RenderConfig) -> None:
    """An existing MP4 is replaced only with ``overwrite``, or when it is the video this folder's last
    render wrote (a resume re-encodes it from the frames), unchanged since."""
    if not video_path.exists() or config.overwrite:
        return
    if folder is not None:
        try:
            recorded = (read_manifest(folder) or {}).get("video") or {}
        except InvalidInput:
            recorded = {}
        if recorded.get("path") == str(video_path.resolve()) and recorded.get("fingerprint") == file_fingerprint(video_path):
            return
    raise Conflict(f"{video_path} already exists", fix="use --overwrite to replace it, or choose another name")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def frame_range(config: RenderConfig, n_frames: int) -> tuple[tuple[int, int], tuple[int, int]]:
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
