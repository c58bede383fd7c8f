"""MP4 output through PyAV (its bundled FFmpeg): H.264 video with the source audio as AAC.

* Video: libx264, yuv420p, BT.709 matrix, primaries and transfer, limited range, tagged as
  such, so browsers and phones play it with the right colours. yuv420p needs even width and
  height; odd sizes are refused with a clear error rather than silently padded.
* Audio: the clip of the source track that the frames cover, read in blocks and encoded to AAC
  as the video advances, so the file is interleaved and memory stays flat.
* Length: the last frame's duration is cut so the video ends exactly where the audio does
  (a track of 10.01 s at 30 fps has 301 frames; the last one lasts 0.01 s).
* Nothing is half-written: the file is written under a temporary name and renamed at the end;
  an error (including any audio problem) removes it and raises. Never a silent MP4.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from backend.errors import BackendError, InvalidInput, NoSpace
from backend.atomic import temp_path

AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
MAX_TIMESCALE = 2**31 - 1


@dataclass
class AudioClip:
    """The part of an audio file that goes into the video."""

    path: Path  # any file backend.audio.io reads
    start_s: float = 0.0  # where the first frame's audio begins
    end_s: float | None = None  # where the video ends; None = the end of the file


@dataclass
class VideoSettings:
    crf: int = 18  # x264 quality: 0 lossless .. 51 worst; 18 looks transparent for this content
    preset: str = "medium"  # x264 speed/size trade-off: ultrafast .. veryslow
    audio_bitrate: int = 192_000  # AAC bits per second


def check_video_size(width: int, height: int) -> None:
    if width % 2 or height % 2:
        raise InvalidInput(f"MP4 (H.264 yuv420p) needs an even width and height, got {width}x{height}",
                           fix="choose an even --size such as 1280x720")


def _timescale(fps: Fraction, sample_rate: int | None) -> int:
    """Ticks per second in which both a frame and an audio sample are whole numbers of ticks."""
    base = fps.numerator
    if sample_rate:
        both = math.lcm(base, sample_rate)
        if both <= MAX_TIMESCALE:
            return both
    return base * 1000 if base * 1000 <= MAX_TIMESCALE else base


def rgb8(colour: np.ndarray) -> np.ndarray:
    """Display colour (H, W, C) float in [0, 1] -> (H, W, 3) uint8, alpha ignored."""
    return (np.clip(colour[..., :3], 0.0, 1.0) * np.float32(255) + np.float32(0.5)).astype(np.uint8)


class VideoWriter:
    """Streams frames into an MP4. ``write`` frames in order, then ``close()``; ``abort()`` on error."""

    def __init__(self, path: Path, *, width: int, height: int, fps: Fraction, audio: AudioClip | None,
                 frame_count: int, settings: VideoSettings | None = None):
        check_video_size(width, height)
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, Fraction(fps)
        self.settings = settings or VideoSettings()
        self.frames_written = 0
        self._tmp = temp_path(self.path)
        self._audio = _AudioFeed(audio) if audio is not None else None
        rate = self._audio.rate if self._audio else None
        self._ticks = _timescale(self.fps, rate)  # stream timescale, ticks per second
        self._frame_ticks = self._ticks * self.fps.denominator // self.fps.numerator
        self.frame_count = frame_count
        self._last_pts = (frame_count - 1) * self._frame_ticks  # the frame whose duration is cut
        self._end_ticks = None
        if self._audio is not None:  # the video ends where the audio clip does
            self._end_ticks = max(self._last_pts + 1, self._audio.total * self._ticks // self._audio.rate)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._tmp), mode="w", format="mp4",
                                      options={"movflags": "+faststart"})
        except (OSError, av.FFmpegError) as exc:
            raise InvalidInput(f"cannot write video {self.path}: {exc}") from None
        with self._abort_on_error():
            self._video = self._add_video_stream()
            if self._audio is not None:
                self._audio.open(self._container, self.settings.audio_bitrate)

    @contextlib.contextmanager
    def _abort_on_error(self):
        """Any failure drops the unfinished file; FFmpeg and disk errors become one clear message."""
        try:
            yield
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace(f"no space left on the disk of {self.path.parent} (cannot write {self.path.name})",
                              fix="free some space or choose another folder") from None
            raise InvalidInput(f"cannot write video {self.path}: {exc}") from None
        except BaseException:
            self.abort()
            raise

    def _add_video_stream(self):
        s = self.settings
        stream = self._container.add_stream("libx264", rate=self.fps,
                                            options={"crf": str(s.crf), "preset": s.preset})
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        ctx = stream.codec_context
        ctx.time_base = Fraction(1, self._ticks)
        stream.time_base = Fraction(1, self._ticks)
        ctx.color_range = 1  # MPEG (limited)
        ctx.colorspace = 1  # BT.709 matrix
        ctx.color_primaries = 1  # BT.709 primaries
        ctx.color_trc = 1  # BT.709 transfer (players treat it as sRGB-like display gamma)
        return stream

    def write(self, colour: np.ndarray) -> None:
        """Append one frame of display colour (H, W, C) float in [0, 1]."""
        if colour.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {colour.shape[1]}x{colour.shape[0]}, video is {self.width}x{self.height}")
        frame = av.VideoFrame.from_ndarray(rgb8(colour), format="rgb24")
        frame = frame.reformat(format="yuv420p", src_colorspace="ITU709", dst_colorspace="ITU709",
                               dst_color_range=1)
        if self.frames_written >= self.frame_count:
            raise ValueError(f"video {self.path} was opened for {self.frame_count} frames")
        frame.pts = self.frames_written * self._frame_ticks
        frame.time_base = Fraction(1, self._ticks)
        with self._abort_on_error():
            self._mux(self._video.encode(frame))
            self.frames_written += 1
            if self._audio is not None:  # keep audio level with the video: an interleaved file
                self._mux(self._audio.encode_until(Fraction(self.frames_written) / self.fps))

    def _mux(self, packets) -> None:
        for packet in packets:
            if self._end_ticks is not None and packet.stream is self._video and packet.pts == self._last_pts:
                packet.duration = self._end_ticks - packet.pts  # cut the last frame at the audio's end
            self._container.mux(packet)

    def close(self) -> Path:
        """Encode the rest of the audio clip (an error if it runs short), finish both streams and move
        the file into place."""
        with self._abort_on_error():
            if self.frames_written != self.frame_count:
                raise ValueError(f"video {self.path} got {self.frames_written} of {self.frame_count} frames")
            if self._audio is not None:
                self._mux(self._audio.encode_until(None))
            self._mux(self._video.encode(None))
            if self._audio is not None:
                self._mux(self._audio.flush())
            self._container.close()
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file."""
        try:
            self._container.close()
        except Exception:  # closing a broken container may fail again; the file goes anyway
            pass
        self._tmp.unlink(missing_ok=True)


class _AudioFeed:
    """Reads an :class:`AudioClip` block by block and encodes it to AAC on demand."""

    def __init__(self, clip: AudioClip):
        from backend.audio.io import probe_audio

        self.clip = clip
        info = probe_audio(clip.path)
        self.source_rate = int(info.sample_rate)
        self.rate = self.source_rate if self.source_rate in AAC_RATES else 48000  # AAC needs a standard rate
        self.channels = 1 if info.channels == 1 else 2  # more than stereo is mixed down to stereo
        start = max(0.0, float(clip.start_s))
        end = info.duration if clip.end_s is None else min(float(clip.end_s), info.duration)
        if end <= start:
            raise InvalidInput(f"the audio clip {start:.3f}-{end:.3f} s of {clip.path} is empty "
                               f"(the file lasts {info.duration:.3f} s)")
        self.start_sample = round(start * self.rate)
        self.total = round(end * self.rate) - self.start_sample  # samples the video carries
        self.sent = 0
        self._blocks: Iterator[np.ndarray] | None = None
        self._pending = np.zeros((0, self.channels), np.float32)
        self._skipped = 0

    def open(self, container, bitrate: int) -> None:
        from backend.audio.io import read_audio_blocks

        self.stream = container.add_stream("aac", rate=self.rate)
        self.stream.layout = "mono" if self.channels == 1 else "stereo"
        self.stream.bit_rate = bitrate
        self.stream.time_base = Fraction(1, self.rate)
        resample = None if self.rate == self.source_rate else self.rate
        self._blocks = iter(read_audio_blocks(self.clip.path, sample_rate=resample, mono=self.channels == 1,
                                              block_seconds=5.0))

    def _next_block(self) -> np.ndarray | None:
        for block in self._blocks:
            block = np.asarray(block, np.float32).reshape(len(block), -1)
            if block.shape[1] > 2:
                block = np.stack((block[:, 0::2].mean(axis=1), block[:, 1::2].mean(axis=1)), axis=1)
            elif block.shape[1] == 1 and self.channels == 2:
                block = np.repeat(block, 2, axis=1)
            if self._skipped < self.start_sample:  # drop audio before the clip's start
                drop = min(len(block), self.start_sample - self._skipped)
                self._skipped += drop
                block = block[drop:]
            if len(block):
                return block
        return None

    def encode_until(self, seconds: Fraction | None) -> list:
        """Encode samples up to ``seconds`` into the clip (None = all of it); returns packets."""
        target = self.total if seconds is None else min(self.total, math.ceil(seconds * self.rate))
        packets = []
        while self.sent < target:
            if not len(self._pending):
                block = self._next_block()
                if block is None and self.total - self.sent <= self.rate // 20:
                    block = np.zeros((self.total - self.sent, self.channels), np.float32)  # decoder rounding
                if block is None:
                    raise InvalidInput(f"{self.clip.path} ended after {self.sent / self.rate:.3f} s of the "
                                       f"{self.total / self.rate:.3f} s of audio the video needs; "
                                       "the file may be truncated or unreadable")
                self._pending = block
            take = self._pending[: target - self.sent]
            self._pending = self._pending[len(take):]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(take.T), format="fltp",
                                               layout=self.stream.layout.name)
            frame.sample_rate = self.rate
            frame.pts = self.sent
            frame.time_base = Fraction(1, self.rate)
            try:
                packets.extend(self.stream.encode(frame))
            except av.FFmpegError as exc:
                raise BackendError(f"AAC encoding of {self.clip.path} failed: {exc}") from None
            self.sent += len(take)
        return packets

    def flush(self) -> list:
        return list(self.stream.encode(None))


def probe_video(path: Path) -> dict:
    """What a player sees: codecs, size, pixel format, frame count and durations (seconds)."""
    with av.open(str(path)) as container:
        info = {"duration": container.duration / av.time_base if container.duration else 0.0, "streams": []}
        for stream in container.streams:
            entry = {"type": stream.type, "codec": stream.codec_context.name,
                     "duration": float(stream.duration * stream.time_base) if stream.duration else 0.0}
            if stream.type == "video":
                entry.update(width=stream.codec_context.width, height=stream.codec_context.height,
                             pix_fmt=stream.codec_context.pix_fmt, frames=stream.frames)
            if stream.type == "audio":
                entry.update(sample_rate=stream.codec_context.sample_rate,
                             channels=stream.codec_context.channels)
            info["streams"].append(entry)
    return info


class VideoSink:
    """Feeds a :class:`VideoWriter` from its own thread, in order, through a bounded queue."""

    _DONE = object()

    def __init__(self, writer: VideoWriter, *, queue_frames: int = 4):
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="video-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (colour := self._queue.get()) is not self._DONE:
                self.writer.write(colour)
        except BaseException as exc:  # handed to the caller by put/finish
            self._error = exc

    def put(self, colour: np.ndarray) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(colour, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> Path:
        """Encode what is queued, close the file (audio and all) and return its path."""
        self.put(self._DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._finished = True
        return self.writer.close()

    def close(self) -> None:
        """After ``finish`` nothing to do; otherwise stop the thread and drop the unfinished file."""
        if self._finished:
            return
        if self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put(self._DONE)
            self._thread.join()
        self.writer.abort()
