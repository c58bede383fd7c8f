import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from backend import __version__
from backend.model.cppn import CPPN, CPPNConfig, Reactivity
from backend.errors import Cancelled, Conflict, InvalidInput, NotFound
from backend.writers.image import image_header, read_image
from backend.paths import file_sha256
from backend.render.job import RenderConfig, parse_frame_range, parse_size, render
from backend.styles.library import DEFAULT_STYLE, load_style, save_style
from backend.writers.video import probe_video
from tests.helpers.cpu import OTHER_CPU
from tests.helpers.signals import click_track, irregular_times, pulse_train, tone, write_audio

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(width=64, height=36)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2 s track (tone + beats) and a small style, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("render")
    sr = 22050
    beats, _ = pulse_train(120, sr=sr, duration=2.0)
    audio = write_audio(folder / "track.wav", beats + tone(220, sr=sr, duration=2.0, amplitude=0.2), sr)
    style = save_style(CPPN(CPPNConfig(seed=11, hidden=32, depth=3)), folder / "tiny.safetensors",
                       name="tiny", kind="procedural")
    return audio, style


def frame_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("frame_*"))}


def test_size_and_range_parsing():
    assert parse_size("720p") == (1280, 720) and parse_size("4K") == (3840, 2160)
    assert parse_size("320x200") == (320, 200)
    assert parse_frame_range("100-120") == (100, 120) and parse_frame_range("7") == (7, 7)
    for bad in ("12x", "wide", "0x10", "1280x0"):
        with pytest.raises(InvalidInput, match="size|width|height"):
            parse_size(bad)
    with pytest.raises(InvalidInput, match="forwards"):
        parse_frame_range("20-10")


def test_a_range_rendered_alone_is_byte_identical_and_reruns_give_the_same_bytes(files, tmp_path):
    audio, style = files
    full = render(audio, style, tmp_path / "full", config=RenderConfig(**SMALL))
    assert (full.first_frame, full.last_frame, full.frames_rendered) == (1, 60, 60)
    render(audio, style, tmp_path / "part", config=RenderConfig(**SMALL, frames=(20, 25)))
    render(audio, style, tmp_path / "again", config=RenderConfig(**SMALL))
    whole, alone = frame_bytes(tmp_path / "full"), frame_bytes(tmp_path / "part")
    assert sorted(alone) == [f"frame_{n:06d}.exr" for n in range(20, 26)]
    assert all(alone[name] == whole[name] for name in alone)
    assert frame_bytes(tmp_path / "again") == whole
    assert len(set(whole.values())) == 60  # and the frames really move


def test_names_follow_scene_frames_and_png_is_srgb(files, tmp_path):
    audio, style = files
    config = RenderConfig(**SMALL, format="png", png_depth=16, frame_start=101, prefix="shot_", duration=0.5)
    result = render(audio, style, tmp_path / "png", config=config)
    names = sorted(p.name for p in (tmp_path / "png").glob("shot_*"))
    assert names == [f"shot_{n:06d}.png" for n in range(101, 116)]  # 0.5 s at 30 fps from frame 101
    assert image_header(tmp_path / "png" / names[0]) == (64, 36, 3, "uint16")
    exr = render(audio, style, tmp_path / "exr", config=RenderConfig(**SMALL, frame_start=101, duration=0.5))
    linear = read_image(tmp_path / "exr" / "frame_000107.exr")[..., :3]
    srgb = read_image(tmp_path / "png" / "shot_000107.png")
    shown = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.clip(linear, 0, 1) ** (1 / 2.4) - 0.055)
    assert np.abs(shown - srgb).max() <= 1 / 255
    assert result.frames_rendered == exr.frames_rendered == 15


def test_manifest_records_what_the_frames_were_made_from(files, tmp_path):
    audio, style = files
    config = RenderConfig(**SMALL, fps="29.97", seed=4, frames=(10, 19),
                          reactivity=Reactivity(amount=0.8, gains={"bass": 1.5}))
    render(audio, style, tmp_path / "out", config=config)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["audio"]["path"] == str(audio.resolve())
    assert manifest["audio"]["sha256"] == file_sha256(audio)
    assert manifest["fps"] == "30000/1001" and manifest["size"] == [64, 36]
    assert manifest["style"] == {"name": "tiny", "kind": "procedural", "sha256": load_style(style).sha256,
                                 "path": str(style)}
    settings = manifest["settings"]
    assert settings["seed"] == 4 and settings["format"] == "exr" and settings["exr_compression"] == "zip"
    assert settings["reactivity"]["amount"] == 0.8 and settings["reactivity"]["gains"] == {"bass": 1.5}
    assert settings["audio"]["fps"] == "30000/1001" and "smoothing" in settings["audio"]
    assert manifest["track"] == {"first": 1, "last": 60, "count": 60}  # ceil(2 s * 29.97)
    assert manifest["ranges"] == [[10, 19]] and manifest["version"] == __version__
    render(audio, style, tmp_path / "out", config=RenderConfig(**{**config.__dict__, "frames": (20, 30)}))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["ranges"] == [[10, 30]]


def test_resume_skips_done_frames_and_changed_settings_are_refused(files, tmp_path):
    audio, style = files
    out = tmp_path / "out"
    render(audio, style, out, config=RenderConfig(**SMALL, frames=(1, 30)))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*")}
    result = render(audio, style, out, config=RenderConfig(**SMALL))
    assert (result.frames_skipped, result.frames_rendered) == (30, 30)
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    with pytest.raises(Conflict, match=r"size: \[64, 36\] -> \[32, 18\]"):
        render(audio, style, out, config=RenderConfig(width=32, height=18))
    with pytest.raises(Conflict, match="seed"):
        render(audio, style, out, config=RenderConfig(**SMALL, seed=1))
    result = render(audio, style, out, config=RenderConfig(**SMALL, seed=1, frames=(1, 5), overwrite=True))
    assert result.frames_rendered == 5
    assert sorted(p.name for p in out.glob("frame_*")) == [f"frame_{n:06d}.exr" for n in range(1, 6)]


def test_a_folder_rendered_by_an_older_analysis_is_refused_not_mixed(files, tmp_path):
    """Analysis version 3 splits the drums from the harmony and adds features: frames of version 2
    are never resumed into."""
    audio, style = files
    out = tmp_path / "out"
    render(audio, style, out, config=RenderConfig(**SMALL, frames=(1, 5)))
    manifest = json.loads((out / "manifest.json").read_text())
    older = manifest["settings"]["audio"]
    older["analysis_version"] = 2
    older["chroma_median_ms"] = 250.0  # a setting version 2 had
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = frame_bytes(out)
    with pytest.raises(Conflict, match=r"analysis_version: 2 -> 3"):
        render(audio, style, out, config=RenderConfig(**SMALL, frames=(1, 10)))
    assert frame_bytes(out) == before


def test_frames_without_a_manifest_are_not_overwritten_silently(files, tmp_path):
    audio, style = files
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_000001.exr").write_bytes(b"someone else's frame")
    with pytest.raises(Conflict, match="no manifest"):
        render(audio, style, out, config=RenderConfig(**SMALL))
    assert (out / "frame_000001.exr").read_bytes() == b"someone else's frame"


def test_resume_after_the_render_process_is_killed(files, tmp_path):
    audio, _ = files
    sr = 22050
    long_audio = write_audio(tmp_path / "long.wav", tone(220, sr=sr, duration=3.0), sr)
    style = save_style(CPPN(CPPNConfig(seed=2)), tmp_path / "s.safetensors", name="s", kind="procedural")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "backend", "render", str(long_audio), "--style", str(style), "-o", str(out),
               "--size", "160x90", "--device", "cpu", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("frame_*.exr"))) < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the render finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    survivors = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("frame_*.exr")}
    assert 5 <= len(survivors) < 90
    for name in survivors:  # whatever the kill interrupted, every file under a frame name is whole
        assert read_image(out / name).shape == (90, 160, 4)

    rerun = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"rendered {90 - len(survivors)} frames (skipped {len(survivors)} already done)" in rerun.stdout
    for name, stamp in survivors.items():  # none rendered twice
        stat = (out / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == stamp
    expected = ["manifest.json"] + [f"frame_{n:06d}.exr" for n in range(1, 91)]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # and no stale temporary files
    clean = render(long_audio, style, tmp_path / "clean", config=RenderConfig(width=160, height=90, device="cpu"))
    assert clean.frames_rendered == 90
    assert frame_bytes(out) == frame_bytes(tmp_path / "clean")


def test_a_folder_started_on_another_cpu_is_finished_here_and_differs_only_by_rounding(files, tmp_path):
    """A farm mixing CPUs: frames 1-30 from a process on other CPU kernels, the rest from this one."""
    audio, style = files
    mixed, here = tmp_path / "mixed", tmp_path / "here"
    command = [sys.executable, "-m", "backend", "render", str(audio), "--style", str(style), "-o", str(mixed),
               "--size", "64x36", "--device", "cpu", "--frames", "1-30", "-q"]
    other = subprocess.run(command, env={**os.environ, **OTHER_CPU, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    finished = render(audio, style, mixed, config=RenderConfig(**SMALL))
    assert (finished.frames_skipped, finished.frames_rendered) == (30, 30)
    render(audio, style, here, config=RenderConfig(**SMALL))
    for name, data in frame_bytes(here).items():
        if int(name[6:12]) > 30:
            assert (mixed / name).read_bytes() == data  # this machine's frames: the same bytes
        else:  # the other CPU's: within one half-float step (5e-4 in linear values, << 1/255)
            assert np.abs(read_image(mixed / name) - read_image(here / name)).max() <= 5e-4, name


def test_mp4_output_and_one_pass_into_frames_and_video(files, tmp_path):
    audio, style = files
    result = render(audio, style, tmp_path / "clip.mp4", config=RenderConfig(**SMALL, frames=(11, 40)))
    info = probe_video(result.output)
    kinds = sorted((s["type"], s["codec"]) for s in info["streams"])
    assert kinds == [("audio", "aac"), ("video", "h264")]
    video = next(s for s in info["streams"] if s["type"] == "video")
    assert video["frames"] == 30 and video["duration"] == pytest.approx(1.0, abs=2e-3)
    both = render(audio, style, tmp_path / "frames", config=RenderConfig(**SMALL), video=tmp_path / "all.mp4")
    assert both.frames_rendered == 60 and len(list((tmp_path / "frames").glob("*.exr"))) == 60
    info = probe_video(tmp_path / "all.mp4")
    assert info["duration"] == pytest.approx(2.0, abs=2e-3)
    assert [s["frames"] for s in info["streams"] if s["type"] == "video"] == [60]
    again = render(audio, style, tmp_path / "frames", config=RenderConfig(**SMALL), video=tmp_path / "all.mp4")
    assert (again.frames_rendered, again.frames_skipped) == (0, 60)  # video re-encoded from the files
    assert [s["frames"] for s in probe_video(tmp_path / "all.mp4")["streams"] if s["type"] == "video"] == [60]
    with pytest.raises(Conflict, match="already exists"):
        render(audio, style, tmp_path / "clip.mp4", config=RenderConfig(**SMALL))
    with pytest.raises(InvalidInput, match="even width"):
        render(audio, style, tmp_path / "odd.mp4", config=RenderConfig(width=63, height=36))
    with pytest.raises(InvalidInput, match="alpha"):
        render(audio, style, tmp_path / "a.mp4", config=RenderConfig(**SMALL, alpha=True))


def test_cancelling_stops_cleanly_and_the_next_run_resumes(files, tmp_path):
    audio, style = files
    seen = []

    def cancel_at_frame_12(event):
        seen.append(event.done)
        return not (event.stage == "render" and event.done >= 12)

    with pytest.raises(Cancelled):
        render(audio, style, tmp_path / "out", config=RenderConfig(**SMALL), progress=cancel_at_frame_12)
    out = tmp_path / "out"
    done = sorted(p.name for p in out.glob("frame_*"))
    assert 0 < len(done) <= 12 and not list(out.glob(".*tmp*"))
    # the manifest claims no frames the cancelled render did not finish (Blender reads its ranges)
    assert json.loads((out / "manifest.json").read_text())["ranges"] == []
    # a frame damaged on disk outside the finished ranges keeps its header but is rendered again
    damaged = out / done[-1]
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[: len(whole) // 2])
    result = render(audio, style, out, config=RenderConfig(**SMALL))
    assert result.frames_skipped == len(done) - 1 and result.frames_rendered == 61 - len(done)
    assert damaged.read_bytes() == whole
    assert json.loads((out / "manifest.json").read_text())["ranges"] == [[1, 60]]


def test_memory_stays_flat_for_longer_tracks(tmp_path):
    sr = 8000
    style = save_style(CPPN(CPPNConfig(seed=1, hidden=8, depth=2)), tmp_path / "s.safetensors",
                       name="s", kind="procedural")
    peaks = []
    for seconds in (2, 8):
        audio = write_audio(tmp_path / f"t{seconds}.wav", tone(200, sr=sr, duration=seconds), sr)
        config = RenderConfig(width=160, height=90, format="png")  # 170 KB per computed frame
        from backend.audio.features import analyze

        features = analyze(audio, config=config.audio_config())
        tracemalloc.start()
        render(audio, style, tmp_path / f"out{seconds}", config=config, features=features)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 180 more frames (30 MB if they were kept) must not raise the peak by more than a few frames.
    assert peaks[1] < peaks[0] + 2_000_000


def test_bad_inputs_are_clear_errors(files, tmp_path):
    audio, style = files
    with pytest.raises(NotFound, match="no style named 'nope'"):
        render(audio, "nope", tmp_path / "a")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(InvalidInput, match="not an Audio CPPN style"):
        render(audio, corrupt, tmp_path / "b")
    with pytest.raises(NotFound, match="audio file not found"):
        render(tmp_path / "missing.wav", style, tmp_path / "c")
    with pytest.raises(InvalidInput, match=r"frames 50-70 are outside the track: it has frames 1-60"):
        render(audio, style, tmp_path / "d", config=RenderConfig(**SMALL, frames=(50, 70)))
    with pytest.raises(InvalidInput, match="outside the track"):
        render(audio, style, tmp_path / "d", config=RenderConfig(**SMALL, frame_start=100, frames=(1, 10)))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InvalidInput, match="cannot write"):
        render(audio, style, blocker / "frames", config=RenderConfig(**SMALL))
    with pytest.raises(InvalidInput, match="is a file"):
        render(audio, style, blocker, config=RenderConfig(**SMALL))
    with pytest.raises(InvalidInput, match="width must be"):
        RenderConfig(width=0, height=10)
    with pytest.raises(InvalidInput, match="fps"):
        RenderConfig(fps=0)
    with pytest.raises(InvalidInput, match="duration"):
        RenderConfig(duration=-1)
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").glob("frame_*"))


def mean_change(frames):
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # [i] = change from frame i to i + 1


@pytest.fixture(scope="module")
def irregular_clicks(tmp_path_factory):
    """Clicks at irregular times (never a beat grid) and their features, analysed once for every style."""
    from backend.audio.features import analyze

    sr = 22050
    clicks = irregular_times(14, seed=3)
    duration = float(clicks[-1]) + 0.6
    audio = write_audio(tmp_path_factory.mktemp("clicks") / "clicks.wav",
                        click_track(clicks, sr=sr, duration=duration, click_ms=10), sr)
    config = RenderConfig(width=96, height=54, format="png")
    return audio, clicks, config, analyze(audio, config=config.audio_config())


@pytest.mark.parametrize("style", sorted(p.stem for p in (ROOT / "styles").glob("*.safetensors")))
def test_clicks_visibly_drive_every_bundled_style(irregular_clicks, style, tmp_path):
    audio, clicks, config, features = irregular_clicks
    render(audio, style, tmp_path / "out", config=config, features=features)
    frames = np.stack([read_image(p) for p in sorted((tmp_path / "out").glob("frame_*.png"))])
    change = mean_change(frames)
    on_click = np.isin(np.arange(len(change)), np.round(clicks * 30).astype(int) - 1)  # into the click's frame
    ratio = change[on_click].mean() / np.median(change[~on_click])
    print(f"{style}: click frames change {ratio:.1f}x the median frame")
    assert ratio >= 3.0, f"clicks change {style} only {ratio:.2f}x more than other frames"


def test_the_picture_changes_less_in_silence_than_in_music_and_reactivity_scales_it(tmp_path):
    sr = 22050
    music, _ = pulse_train(120, sr=sr, duration=3.0)
    music = music + tone(220, sr=sr, duration=3.0, amplitude=0.2) + tone(330, sr=sr, duration=3.0, amplitude=0.15)
    silence = np.zeros(int(2.0 * sr), np.float32)
    audio = write_audio(tmp_path / "t.wav", np.concatenate([silence, music, silence]), sr)
    from backend.audio.features import analyze

    config = RenderConfig(width=64, height=36, format="png", png_depth=16)
    features = analyze(audio, config=config.audio_config())
    changes = {}
    for amount in (1.0, 0.25):
        folder = tmp_path / f"r{amount}"
        render(audio, DEFAULT_STYLE, folder, features=features,
               config=RenderConfig(**{**config.__dict__, "reactivity": Reactivity(amount=amount)}))
        changes[amount] = mean_change(np.stack([read_image(p) for p in sorted(folder.glob("frame_*.png"))]))
    silent = changes[1.0][5:55].mean()  # frames 6-56: the first 2 s, silent
    musical = changes[1.0][65:145].mean()
    assert silent < 0.2 * musical
    assert changes[0.25][65:145].mean() < 0.6 * musical  # the global amount tames the motion
