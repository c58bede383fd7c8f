from fractions import Fraction

import av
import numpy as np
import pytest

from backend.errors import BackendError, InvalidInput
from backend.timebase import frame_count
from backend.writers.video import AudioClip, VideoWriter, probe_video
from tests.helpers.signals import tone, write_audio

W, H = 96, 54


def test_frames(n, seed=0):
    """Distinct frames: a moving white square on a colour that ramps over time."""
    for i in range(n):
        frame = np.zeros((H, W, 3), np.float32)
        frame[..., 0] = i / max(1, n - 1)
        frame[..., 2] = 0.4
        x = (4 * i) % (W - 16)
        frame[10:26, x:x + 16] = 1.0
        yield frame


test_frames.__test__ = False  # a helper, not a test


def encode(path, audio_path, fps, n_frames, *, start=0.0, end=None):
    writer = VideoWriter(path, width=W, height=H, fps=fps, audio=AudioClip(audio_path, start, end),
                         frame_count=n_frames)
    for frame in test_frames(n_frames):
        writer.write(frame)
    return writer.close()


def decoded_frames(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24", src_colorspace="ITU709", src_color_range=1).astype(np.float32) / 255
                for f in container.decode(video=0)]


@pytest.mark.parametrize("fps,seconds,sr,channels,fmt", [
    (Fraction(30), 2.0, 44100, 2, "wav"),
    (Fraction(30000, 1001), 1.37, 48000, 1, "flac"),  # 29.97 and a last frame that is cut short
    (Fraction(24), 1.5, 22050, 2, "mp3"),
])
def test_mp4_has_h264_and_aac_and_lasts_exactly_as_long_as_the_audio(tmp_path, fps, seconds, sr, channels, fmt):
    audio = write_audio(tmp_path / f"a.{fmt}", tone(330, sr=sr, duration=seconds, channels=channels), sr)
    n = frame_count(round(seconds * sr), sr, fps)
    path = encode(tmp_path / "v.mp4", audio, fps, n)
    info = probe_video(path)
    video = [s for s in info["streams"] if s["type"] == "video"]
    sound = [s for s in info["streams"] if s["type"] == "audio"]
    assert len(video) == 1 and len(sound) == 1
    assert video[0]["codec"] == "h264" and video[0]["pix_fmt"] == "yuv420p"
    assert (video[0]["width"], video[0]["height"]) == (W, H) and video[0]["frames"] == n
    assert sound[0]["codec"] == "aac" and sound[0]["channels"] == channels
    assert video[0]["duration"] == pytest.approx(seconds, abs=2e-3)
    assert sound[0]["duration"] == pytest.approx(seconds, abs=0.03)
    assert len(decoded_frames(path)) == n
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([audio.name, "v.mp4"])  # no temp files


def test_colours_survive_and_are_tagged_bt709(tmp_path):
    audio = write_audio(tmp_path / "a.wav", tone(220, sr=44100, duration=1.0), 44100)
    path = encode(tmp_path / "v.mp4", audio, Fraction(30), 30)
    frames = decoded_frames(path)
    for got, want in zip(frames, test_frames(30)):
        assert np.abs(got - want).mean() < 3 / 255  # lossy, but the right picture in the right order
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (1, 1, 1)  # BT.709


def test_the_sound_in_the_video_is_the_clip_of_the_source(tmp_path):
    sr = 44100
    y = np.concatenate([tone(440, sr=sr, duration=1.0), np.zeros(sr, np.float32)])  # 1 s tone, 1 s silence
    audio = write_audio(tmp_path / "a.wav", y, sr)
    path = encode(tmp_path / "v.mp4", audio, Fraction(30), 30, start=1.0, end=2.0)  # the silent second
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert np.abs(decoded).max() < 0.02
    path = encode(tmp_path / "w.mp4", audio, Fraction(30), 30, start=0.0, end=1.0)  # the tone
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert np.sqrt(np.mean(decoded[5000:40000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_unusual_sample_rates_are_resampled_for_aac(tmp_path):
    audio = write_audio(tmp_path / "a.wav", tone(330, sr=37800, duration=1.0), 37800)
    info = probe_video(encode(tmp_path / "v.mp4", audio, Fraction(25), 25))
    assert [s["sample_rate"] for s in info["streams"] if s["type"] == "audio"] == [48000]


def test_odd_sizes_are_refused_with_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="even width and height, got 95x54"):
        VideoWriter(tmp_path / "v.mp4", width=95, height=54, fps=Fraction(30), audio=None, frame_count=1)


def test_unreadable_audio_never_gives_a_silent_video(tmp_path):
    sr, fps = 8000, Fraction(10)
    audio = write_audio(tmp_path / "a.wav", tone(330, sr=sr, duration=12.0), sr)  # read in 5 s blocks
    writer = VideoWriter(tmp_path / "v.mp4", width=W, height=H, fps=fps, audio=AudioClip(audio), frame_count=120)
    frames = test_frames(120)
    for _ in range(10):
        writer.write(next(frames))
    audio.write_bytes(audio.read_bytes()[:2000])  # the track is damaged while the video is being made
    with pytest.raises(BackendError, match="a.wav"):
        for frame in frames:
            writer.write(frame)
        writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no MP4, no temporary file
    with pytest.raises(InvalidInput, match="a.wav"):
        VideoWriter(tmp_path / "v.mp4", width=W, height=H, fps=fps, audio=AudioClip(audio), frame_count=120)
