"""Reading audio: every supported format, resampling and downmixing, a video's audio track, bad files."""

import numpy as np
import pytest
import soundfile as sf

from backend.audio.io import MIN_SECONDS, probe_audio, read_audio_blocks
from backend.errors import InvalidInput, NotFound
from tests.helpers.signals import click_track, tone, write_audio


@pytest.mark.parametrize("fmt,expected", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
def test_probe_describes_each_format(tmp_path, fmt, expected):
    path = write_audio(tmp_path / f"tone.{fmt}", tone(440, sr=48000, duration=1.5, channels=2), 48000)
    info = probe_audio(path)
    assert (info.format, info.sample_rate, info.channels, info.reader) == (expected, 48000, 2, "soundfile")
    assert info.n_samples == 72000 and info.duration == pytest.approx(1.5)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_resampled_mono_blocks_keep_length_and_pitch(tmp_path, fmt):
    path = write_audio(tmp_path / f"tone.{fmt}", tone(1000, sr=44100, duration=2.0, channels=2), 44100)
    blocks = list(read_audio_blocks(path, sample_rate=32000, mono=True, block_seconds=0.25))
    assert len(blocks) > 4 and all(b.dtype == np.float32 and b.shape[1] == 1 for b in blocks)
    y = np.concatenate(blocks)[:, 0]
    assert abs(len(y) - 64000) <= 1
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.fft.rfftfreq(len(y), 1 / 32000)[np.argmax(spectrum)] == pytest.approx(1000, abs=1)


def test_blocks_are_the_file_in_order(tmp_path):
    y = click_track([0.1, 0.7, 1.3], sr=22050, duration=1.6, channels=2)
    path = write_audio(tmp_path / "clicks.wav", y, 22050)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    blocks = list(read_audio_blocks(path, block_seconds=0.1))
    assert {len(b) for b in blocks[:-1]} == {2205}
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def _write_video(path, y, sr, *, with_video=True):
    import av

    with av.open(str(path), "w") as out:
        if with_video:
            video = out.add_stream("libx264", rate=24)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=sr)
        audio.layout = "stereo"
        if with_video:
            for k in range(int(len(y) / sr * 24)):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                frame.pts = k
                out.mux(video.encode(frame))
        planar = np.ascontiguousarray(y.T)
        for start in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start: start + 1024]),
                                               format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = sr, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
        if with_video:
            out.mux(video.encode(None))
    return path


def test_audio_track_of_a_video_is_read_with_pyav(tmp_path):
    times = [0.5, 1.3, 2.2]
    y = click_track(times, sr=48000, duration=3.0, channels=2)
    path = _write_video(tmp_path / "clip.mp4", y, 48000)
    info = probe_audio(path)
    assert info.reader == "pyav" and info.format.endswith("/aac")
    assert (info.sample_rate, info.channels) == (48000, 2) and info.duration == pytest.approx(3.0, abs=0.03)
    decoded = np.concatenate(list(read_audio_blocks(path, block_seconds=0.5)))
    assert len(decoded) == info.n_samples  # the encoder's padding is cut to the stream's duration
    first_click = np.argmax(np.abs(decoded[:, 0]) > 0.2) / 48000
    assert first_click == pytest.approx(0.5, abs=0.003)  # AAC priming delay removed


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="audio file not found: .*nothing.wav"):
        probe_audio(tmp_path / "nothing.wav")


def test_directory_empty_and_text_files_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="is a directory"):
        probe_audio(tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InvalidInput, match=r"empty \(0 bytes\)"):
        probe_audio(tmp_path / "empty.wav")
    (tmp_path / "notes.wav").write_text("these are my notes, not audio\n" * 20)
    with pytest.raises(InvalidInput, match="not a readable audio file .*format not recognised.*expected wav"):
        probe_audio(tmp_path / "notes.wav")


def test_too_short_audio_is_refused(tmp_path):
    path = write_audio(tmp_path / "blip.wav", tone(440, sr=44100, duration=0.1), 44100)
    with pytest.raises(InvalidInput, match=rf"0.10 s of audio; analysis needs at least {MIN_SECONDS} s"):
        probe_audio(path)


@pytest.mark.parametrize("fmt,message", [
    ("wav", r"truncated: its header promises 3.00 s of audio but the file holds 1.5\d s"),
    ("flac", r"truncated or damaged: flac decoder lost sync"),
    ("mp3", r"truncated or damaged: its header promises 3.00 s but only 1.\d\d s could be decoded"),
])
def test_truncated_files_are_refused(tmp_path, fmt, message):
    whole = write_audio(tmp_path / f"whole.{fmt}", click_track([0.5, 1.5, 2.5], sr=44100, duration=3.0), 44100)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match=message):
        probe_audio(cut)
        for _ in read_audio_blocks(cut):
            pass


def test_a_wav_cut_after_its_header_says_what_it_promised(tmp_path):
    whole = write_audio(tmp_path / "whole.wav", tone(440, sr=44100, duration=2.0, channels=2), 44100)
    cut = tmp_path / "header-only.wav"
    cut.write_bytes(whole.read_bytes()[:44])
    with pytest.raises(InvalidInput, match=r"header-only\.wav is truncated: its header promises 2\.00 s of audio "
                                           r"but the file holds 0\.00 s"):
        probe_audio(cut)
