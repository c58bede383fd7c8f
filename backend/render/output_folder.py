"""A folder of frames as a resumable unit: one writer at a time, a manifest that claims only finished work.

The life of a render into a folder::

    with OutputFolder(path, prefix="frame_", fmt=fmt, overwrite=False) as folder:  # creates it, takes the lock
        folder.prepare(manifest)            # refuse other settings (Conflict); nothing written yet
        done = folder.frames_done(1, 300)   # frames already on disk and sound
        ...                                 # slow work (audio analysis) may fail here: nothing changed
        folder.start()                      # just before the first frame: clear replaced frames, write manifest
        ...                                 # frames written
        folder.finish_range(1, 300)         # record the range in the manifest

The lock (:mod:`backend.render.folder_lock`) is taken before anything in the folder is read or
touched and held until the block ends, so ``overwrite`` never deletes frames another process is
writing. A run that fails before its first frame leaves the folder as it found it: no manifest
that covers nothing, and a folder it created is removed again.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from backend.atomic import check_writable, create_folders, remove_created, remove_stale_temps
from backend.errors import Conflict, InvalidInput
from backend.paths import file_sha256
from backend.render.folder_lock import OutputLock
from backend.user_paths import kind_of
from backend.render.manifest import MANIFEST_NAME, differences, merge_ranges, now_iso, read_manifest, write_manifest
from backend.writers.image import ImageFormat, image_is_complete, image_is_whole


def frame_path(folder: Path, prefix: str, frame: int, extension: str) -> Path:
    return Path(folder) / f"{prefix}{frame:06d}{extension}"


def frame_files(folder: Path, prefix: str, extension: str) -> list[Path]:
    """Files in ``folder`` named like frames of ``prefix`` and ``extension`` (any kind of file)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\d{{6,}}{re.escape(extension)}$")
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if pattern.match(e.name)]


class OutputFolder:
    """One render's hold on a folder of frames (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, *, prefix: str, fmt: ImageFormat, overwrite: bool = False):
        self.path = Path(path)
        self.prefix = prefix
        self.fmt = fmt
        self.overwrite = overwrite
        self.manifest: dict | None = None  # what this run will record
        self._lock = OutputLock(self.path)
        self._created: list[Path] = []
        self._replaced: tuple[str, str] | None = None  # (prefix, extension) of frames to clear at start
        self._had_manifest = False
        self._wrote_new_manifest = False
        self._finished_any = False

    # -- holding the folder -------------------------------------------------------------------------
    def open(self) -> "OutputFolder":
        if self.path.exists() and not self.path.is_dir():
            raise InvalidInput(f"output {self.path} is {kind_of(self.path.stat().st_mode)}; give a folder for frames "
                           "or a path ending in .mp4")
        self._created = create_folders(self.path)
        try:
            check_writable(self.path)
            self._lock.acquire()  # before reading or touching anything inside
        except BaseException:
            remove_created(self._created)
            raise
        return self

    def close(self, failed: bool = False) -> None:
        """Release the folder; after a failure, take back what this run made and nothing else."""
        try:
            if failed and self._wrote_new_manifest and not self._finished_any and not self._any_frames():
                (self.path / MANIFEST_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release()
            if failed:
                remove_created(self._created)

    def __enter__(self) -> "OutputFolder":
        return self.open()

    def __exit__(self, kind, exc, tb) -> None:
        self.close(failed=kind is not None)

    # -- what is there ------------------------------------------------------------------------------
    def prepare(self, manifest: dict) -> dict:
        """Compare ``manifest`` (this run's settings, no ranges) with the folder's; refuse a change
        unless ``overwrite``. Writes nothing: :meth:`start` does, once frames are really coming."""
        try:
            old = read_manifest(self.path)
        except InvalidInput:
            if not self.overwrite:
                raise
            old = {"settings": {}}  # unreadable: with overwrite, start afresh (its frames go, ours stay apart)
        if old is None:
            strays = sorted(frame_files(self.path, self.prefix, self.fmt.extension))[:3]
            if strays and not self.overwrite:
                raise Conflict(f"{self.path} already holds frames ({', '.join(p.name for p in strays)}, ...) "
                               "but no manifest.json, so their settings are unknown",
                               fix="use --overwrite to replace them, or choose another folder")
        else:
            _recognise_audio_of_older_manifest(old, manifest)
            changed = differences(old, manifest)
            if changed and not self.overwrite:
                raise Conflict(f"{self.path} was rendered with other settings ({'; '.join(changed)})",
                               fix="use --overwrite to re-render it with the new settings, or choose another folder")
            if changed:  # overwrite: frames of the old settings must not mix with the new ones
                settings = old.get("settings") or {}
                self._replaced = (str(settings.get("prefix", self.prefix)),
                                  "." + str(settings.get("format", self.fmt.kind)))
            else:
                manifest["ranges"] = merge_ranges(old.get("ranges", []))
                manifest["created"] = old.get("created", manifest["created"])
                for key, value in (old.get("audio") or {}).items():  # e.g. a full hash an earlier run made
                    manifest["audio"].setdefault(key, value)
        self.manifest = manifest
        self._had_manifest = old is not None
        return manifest

    def frames_done(self, first: int, last: int, *, verify: bool = False) -> set[int]:
        """Frames in first..last already on disk with this render's size, channels and pixel type.

        Frames of ranges a render finished must also be as long as their own structure says (a
        cheap check that catches a file cut short); any other frame (left by a killed or cancelled
        render), and every frame when ``verify``, must decode whole. Only regular files count.
        """
        if self.overwrite or self.manifest is None or self._replaced is not None:
            return set()
        expected = (self.manifest["size"][0], self.manifest["size"][1], self.fmt.channels, self.fmt.pixel_type)
        present = {p.name for p in frame_files(self.path, self.prefix, self.fmt.extension) if p.is_file()}
        finished = self.manifest["ranges"]
        done = set()
        for n in range(first, last + 1):
            path = frame_path(self.path, self.prefix, n, self.fmt.extension)
            if path.name not in present:
                continue
            trusted = not verify and any(a <= n <= b for a, b in finished)
            if image_is_complete(path, expected) if trusted else image_is_whole(path, expected):
                done.add(n)
        return done

    def frame_path(self, number: int) -> Path:
        return frame_path(self.path, self.prefix, number, self.fmt.extension)

    # -- changing it --------------------------------------------------------------------------------
    def start(self) -> None:
        """Frames are about to be written: clear frames of replaced settings, stale temporaries, and
        write the manifest (its ranges: only what earlier renders finished)."""
        if self._replaced is not None:
            for path in frame_files(self.path, *self._replaced):
                path.unlink(missing_ok=True)
        remove_stale_temps(self.path)
        write_manifest(self.path, self.manifest)
        self._wrote_new_manifest = not self._had_manifest

    def finish_range(self, first: int, last: int) -> None:
        """Every frame of first..last is on disk now: record it."""
        self.manifest["ranges"] = merge_ranges(self.manifest["ranges"] + [[int(first), int(last)]])
        self.manifest["updated"] = now_iso()
        write_manifest(self.path, self.manifest)
        self._finished_any = True

    def frame_sizes(self, first: int, last: int) -> list[int]:
        """Bytes of each frame file of first..last on disk now (for 'how much more room is needed')."""
        sizes = []
        for n in range(first, last + 1):
            with contextlib.suppress(OSError):
                sizes.append(self.frame_path(n).stat().st_size)
        return sizes

    def _any_frames(self) -> bool:
        try:
            return bool(frame_files(self.path, self.prefix, self.fmt.extension))
        except OSError:
            return True  # cannot tell: keep the manifest

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME


def _recognise_audio_of_older_manifest(old: dict, new: dict) -> None:
    """Manifests before the quick fingerprint named the audio by its full sha256: when that still
    matches, the folder resumes (one full read of the file, once)."""
    audio = old.get("audio") or {}
    if "fingerprint" in audio or not isinstance(audio.get("sha256"), str):
        return
    with contextlib.suppress(OSError, ValueError):
        if file_sha256(new["audio"]["path"]) == audio["sha256"]:
            audio["fingerprint"] = new["audio"]["fingerprint"]
