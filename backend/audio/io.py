"""Reading audio: validate a file, then stream it in blocks (never the whole file at once).

libsndfile (through soundfile) reads wav, flac, ogg and mp3; PyAV (FFmpeg) reads what it cannot,
such as the audio track of a video file or an m4a. Every problem a user can fix (a missing,
empty, truncated or non-audio file, one too short to analyse) raises a
:class:`~backend.errors.BackendError` whose message names the file and what was expected.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from backend.errors import InvalidInput, NotFound  # noqa: F401 (NotFound: raised through check_regular_file)
from backend.user_paths import check_path_names, check_regular_file

MIN_SECONDS = 0.5  # shorter files carry too little to analyse (no onset context, no beat)
EXPECTED = "expected wav, flac, ogg, mp3 or a video file with an audio track"
# A container duration may round; decoded audio this much shorter than promised is truncated.
_TRUNCATION_TOLERANCE = 0.02


@dataclass
class AudioInfo:
    path: Path
    sample_rate: int  # samples per second per channel
    channels: int
    n_samples: int  # samples per channel (from the header; the container's duration for PyAV)
    duration: float  # seconds, n_samples / sample_rate
    format: str  # "WAV", "FLAC", "OGG", "MP3" (libsndfile) or "ffmpeg:<container>/<codec>"
    reader: str = "soundfile"  # which library decodes it: "soundfile" or "pyav"
    length_known: bool = True  # False when n_samples is only the container's estimate (PyAV, no stream duration)


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Check that ``path`` is an audio file worth analysing and describe it.

    Raises NotFound for a missing path; InvalidInput for a directory, an empty file, a file no
    decoder understands, a WAV whose header promises more data than it holds, or audio shorter
    than :data:`MIN_SECONDS`.
    """
    path = Path(path)
    check_path_names(path, "audio file")
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory; {EXPECTED}")
    check_regular_file(path, "audio file")  # a pipe or /dev/zero is refused by what it is, never read
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path} is empty (0 bytes); {EXPECTED}")
    try:
        info = _probe_soundfile(path)
    except _NotForThisReader as sf_error:
        try:
            info = _probe_pyav(path)
        except _NotForThisReader as av_error:
            raise InvalidInput(f"{path} is not a readable audio file ({sf_error}; {av_error}); "
                               f"{EXPECTED}") from None
    if info.n_samples / info.sample_rate < MIN_SECONDS:
        raise InvalidInput(f"{path} holds {info.n_samples / info.sample_rate:.2f} s of audio; "
                           f"analysis needs at least {MIN_SECONDS} s")
    return info


def read_audio_blocks(path: str | os.PathLike, *, sample_rate: int | None = None, mono: bool = False,
                      block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield the audio of ``path`` as float32 blocks of shape (n, channels), in order.

    ``mono`` averages the channels (shape (n, 1)); ``sample_rate`` resamples on the fly with a
    streaming soxr resampler, so a 3-hour file never sits in memory. Blocks hold about
    ``block_seconds`` of source audio. Raises InvalidInput if the file turns out truncated or
    damaged while decoding.
    """
    if not block_seconds > 0:
        raise InvalidInput(f"block_seconds must be > 0, got {block_seconds}")
    info = probe_audio(path)
    blocks = iter_source_blocks(info, block_frames=max(1, int(block_seconds * info.sample_rate)))
    resampler = None
    if sample_rate is not None and sample_rate != info.sample_rate:
        import soxr

        out_channels = 1 if mono else info.channels
        resampler = soxr.ResampleStream(info.sample_rate, sample_rate, out_channels, dtype="float32")
    for block in blocks:
        if mono:
            block = block.mean(axis=1, keepdims=True, dtype=np.float32)
        if resampler is not None:
            block = resampler.resample_chunk(block)
            if len(block) == 0:
                continue
        yield block
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, 1 if mono else info.channels), np.float32), last=True)
        if len(tail):
            yield tail


def iter_source_blocks(info: AudioInfo, *, block_frames: int, limit: int | None = None) -> Iterator[np.ndarray]:
    """The file's samples at its own rate: float32 blocks (n, channels), ``info.n_samples`` in all
    (at most ``limit``: decoding stops there).

    Raises InvalidInput when decoding stops well short of the length the header promised.
    """
    source = _soundfile_blocks if info.reader == "soundfile" else _pyav_blocks
    wanted = info.n_samples if limit is None else min(limit, info.n_samples)
    done = 0
    for block in source(info, block_frames):
        if info.length_known or limit is not None:
            block = block[: (wanted if info.length_known else limit) - done]  # encoders pad the last packet
        if len(block):
            done += len(block)
            yield block
        if limit is not None and done >= limit:
            return
    if info.length_known and done < wanted * (1 - _TRUNCATION_TOLERANCE):
        raise InvalidInput(f"{info.path} is truncated or damaged: its header promises "
                           f"{info.duration:.2f} s but only {done / info.sample_rate:.2f} s could be decoded")


class _NotForThisReader(Exception):
    """This decoder cannot open the file; the message says why in a few words."""


# libmpg123 (inside libsndfile) prints warnings straight to file descriptor 2 while opening a
# damaged mp3; the CLI promises one line per error, so opening happens with fd 2 muted briefly.
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _muted_c_stderr():
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (some service managers): nothing to mute
            yield
            return
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_BYTES_PER_SAMPLE = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _open_soundfile(path: Path) -> sf.SoundFile:
    with _muted_c_stderr():
        return sf.SoundFile(str(path))


def _probe_soundfile(path: Path) -> AudioInfo:
    try:
        with _open_soundfile(path) as f:
            info = AudioInfo(path=path, sample_rate=int(f.samplerate), channels=int(f.channels),
                             n_samples=int(f.frames), duration=f.frames / f.samplerate, format=f.format)
            log, subtype = f.extra_info, f.subtype
    except (sf.LibsndfileError, RuntimeError) as exc:
        why = _first_line(exc)
        if "possibly a pipe" in why:  # libsndfile's guess for data it cannot place; we checked it is a file
            why = "unrecognised or damaged data"
        raise _NotForThisReader(f"libsndfile: {why}") from None
    # libsndfile quietly shortens a WAV whose data chunk is cut off; its log says by how much.
    cut = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, flags=re.MULTILINE)
    if cut and int(cut.group(2)) < int(cut.group(1)) * (1 - _TRUNCATION_TOLERANCE):
        # seconds from the data chunk's byte counts: a header-only file has no samples to scale from
        bytes_per_second = info.sample_rate * info.channels * _BYTES_PER_SAMPLE.get(subtype, 2)
        promised, held = (int(cut.group(i)) / bytes_per_second for i in (1, 2))
        raise InvalidInput(f"{path} is truncated: its header promises {promised:.2f} s of audio "
                           f"but the file holds {held:.2f} s")
    if info.n_samples <= 0 or info.sample_rate <= 0:
        raise _NotForThisReader("libsndfile: no audio samples")
    return info


def _soundfile_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    try:
        with _open_soundfile(info.path) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if len(block) == 0:
                    return
                yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InvalidInput(f"{info.path} is truncated or damaged: {_first_line(exc)}") from None


def _probe_pyav(path: Path) -> AudioInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise _NotForThisReader("ffmpeg: the file has no audio track")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            # The audio stream's own duration is exact; a container's (e.g. Matroska) may be the video's.
            known = stream.duration is not None and stream.time_base is not None
            if known:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                seconds = 0.0
            info = AudioInfo(path=path, sample_rate=rate, channels=int(stream.channels or 0),
                             n_samples=int(round(seconds * rate)), duration=0.0,
                             format=f"ffmpeg:{container.format.name}/{stream.codec_context.name}",
                             reader="pyav", length_known=known)
    except av.FFmpegError as exc:
        raise _NotForThisReader(f"ffmpeg: {_first_line(exc)}") from None
    if rate <= 0 or info.channels <= 0 or info.n_samples <= 0:
        raise _NotForThisReader("ffmpeg: the audio track has no duration or sample rate")
    info.duration = info.n_samples / rate
    return info


def _pyav_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    import av

    pending: list[np.ndarray] = []
    pending_len = 0
    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.audio[0]
            # Decoders emit planar or packed, int or float; convert every frame to float planar.
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=info.sample_rate)
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    pending.append(converted.to_ndarray().T)  # (n, channels)
                    pending_len += converted.samples
                if pending_len >= block_frames:
                    yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)
                    pending, pending_len = [], 0
    except av.FFmpegError as exc:
        raise InvalidInput(f"{info.path} is truncated or damaged: {_first_line(exc)}") from None
    if pending:
        yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    """The decoder's complaint in a few words, without error numbers or the path repeated."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    text = re.sub(r"^Error opening '.*?':\s*", "", text)
    text = re.sub(r"^Error\s*:\s*", "", text)
    text = re.sub(r":\s*'[^']*'$", "", text)
    text = text.rstrip(".")
    return text[:1].lower() + text[1:]
