"""Decide what loading a render folder will do, before touching the scene (plain Python, no bpy).

Every check that can fail (manifest, frame files) runs here, so a folder that cannot be loaded
leaves the scene exactly as it was. A missing or changed audio file is only a warning: the frames
are still worth loading.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .render_manifest import RenderFolderError, RenderInfo, read_render_folder

COMPOSITOR_MODES = ("REPLACE", "BACKGROUND", "NONE")
# Blender's encode beside the folder; not "<folder>.mp4", which `audio-cppn render --video` and `demo` write
FINAL_VIDEO_SUFFIX = "_final.mp4"


@dataclass
class LoadOptions:
    """How to set the scene up; the operator's properties map one to one onto these."""

    compositor: str = "REPLACE"  # REPLACE: frames are the output; BACKGROUND: the 3D render over them; NONE
    sound: bool = True  # add the render's audio as a sound strip at the render's start frame
    image_strip: bool = False  # also add a VSE image strip (the sequencer then drives the final render)
    standard_view: bool = True  # Standard view transform, so frames look as the backend rendered them
    material: bool = False  # show the frames on the active object's material (an image texture)
    timing: bool = True  # set the scene's fps, frame range and resolution from the render
    video_output: bool = True  # FFmpeg H.264 + AAC output, written next to the render folder
    video_path: str = ""  # where the encode goes; "" = "<render folder>_final.mp4" (not the backend's <folder>.mp4)

    def __post_init__(self):
        if self.compositor not in COMPOSITOR_MODES:
            raise RenderFolderError(f"compositor mode must be one of {', '.join(COMPOSITOR_MODES)}, "
                                    f"got {self.compositor!r}")


@dataclass
class LoadPlan:
    """A checked render folder: every frame file exists; ``audio`` is None when it cannot be found."""

    render: RenderInfo
    options: LoadOptions
    frame_paths: list[Path]  # one per scene frame render.first..render.last
    audio: Path | None  # the audio file to add as a sound strip
    video_path: Path  # the FFmpeg output file
    warnings: list[str] = field(default_factory=list)  # things the user should know; not fatal
    frames_on_disk: int = 0  # of frame_paths; less than all while a render runs


def plan_load(folder: str | Path, options: LoadOptions | None = None) -> LoadPlan:
    """Check ``folder`` and return what to load; raises :class:`RenderFolderError` when it cannot be."""
    options = options or LoadOptions()
    render = read_render_folder(folder)
    paths = [render.frame_path(n) for n in range(render.first, render.last + 1)]
    missing = [n for n, p in zip(range(render.first, render.last + 1), paths) if not p.is_file()]
    if missing:
        raise RenderFolderError(
            f"{render.folder} is missing {len(missing)} of {render.frame_count} frames "
            f"({describe_frames(missing)}, e.g. {render.frame_name(missing[0])}); run the same "
            "'audio-cppn render' command into this folder again: it renders only the missing frames")
    return _plan(render, options, paths)


def plan_running(folder: str | Path, first: int, last: int, options: LoadOptions | None = None) -> LoadPlan:
    """A plan for a render still running over scene frames first..last: its first frame must exist;
    the rest show up as they are written (the image sequence refreshes)."""
    options = options or LoadOptions()
    render = read_render_folder(folder, frames=(first, last))
    paths = [render.frame_path(n) for n in range(render.first, render.last + 1)]
    if not paths[0].is_file():
        raise RenderFolderError(f"{render.frame_name(render.first)} is not written yet; load when the first "
                                "frame is done")
    return _plan(render, options, paths)


def _plan(render: RenderInfo, options: LoadOptions, paths: list[Path]) -> LoadPlan:
    warnings = []
    audio = None
    if options.sound:
        audio, warning = find_audio(render)
        if warning:
            warnings.append(warning)
    video = (Path(options.video_path).expanduser() if options.video_path
             else render.folder.parent / f"{render.folder.name}{FINAL_VIDEO_SUFFIX}")
    return LoadPlan(render=render, options=options, frame_paths=paths, audio=audio,
                    video_path=video.resolve(), warnings=warnings,
                    frames_on_disk=sum(1 for p in paths if p.is_file()))


def find_audio(render: RenderInfo) -> tuple[Path | None, str | None]:
    """The render's audio file and a warning, if any.

    The manifest holds the absolute path at render time; a folder moved to another machine may
    carry the track beside it, so the render folder and its parent are tried too, accepted only
    when the hash matches.
    """
    recorded = render.audio_path
    if recorded.is_file():
        if render.audio_sha256 and file_sha256(recorded) != render.audio_sha256:
            return recorded, (f"{recorded} changed since the frames were rendered; "
                              "the sound may not match the pictures")
        return recorded, None
    for folder in (render.folder, render.folder.parent):
        candidate = folder / recorded.name
        if candidate.is_file() and render.audio_sha256 and file_sha256(candidate) == render.audio_sha256:
            return candidate, None
    return None, (f"the audio file {recorded} is missing, so no sound strip was added; "
                  f"put the track there (or beside the render folder) and load again")


def file_sha256(path: Path, *, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def describe_frames(frames: list[int], *, limit: int = 4) -> str:
    """``[3, 4, 5, 9]`` -> ``"frames 3-5, 9"``; long lists end in ``", ..."``."""
    runs: list[list[int]] = []
    for n in sorted(frames):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = [f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:limit]]
    word = "frame" if len(frames) == 1 else "frames"
    return f"{word} {', '.join(text)}{', ...' if len(runs) > limit else ''}"
