import json
from fractions import Fraction

import pytest
import torch

from backend.audio.io import probe_audio
from backend.cli import main
from backend.audio.demo_track import demo_track_path
from backend.model.cppn import CPPN, CPPNConfig
from backend.writers.image import image_header
from backend.styles.library import save_style
from backend.timebase import frame_count_for_seconds
from backend.writers.video import probe_video
from tests.helpers.cli import options_without_help
from tests.helpers.signals import pulse_train, write_audio


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    y, _ = pulse_train(120, sr=22050, duration=1.5)
    audio = write_audio(folder / "beat.wav", y, 22050)
    style = save_style(CPPN(CPPNConfig(seed=4, hidden=16, depth=2)), folder / "tiny.safetensors",
                       name="tiny", kind="procedural")
    return audio, style


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_describes_every_option_and_gives_examples(capsys):
    for command in ("render", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"audio-cppn {command}" in text
        assert not options_without_help(command)


def test_render_writes_frames_and_prints_a_closing_line(files, tmp_path, capsys):
    audio, style = files
    out = tmp_path / "frames"
    code, stdout, _ = run_cli(capsys, "render", audio, "--style", style, "-o", out, "--size", "48x27",
                              "--fps", "29.97", "--format", "png", "--png-depth", "16", "--frame-start", "10",
                              "--gain", "bass=2", "--smoothing", "onset=0,60", "--seed", "3", "-q")
    assert code == 0
    names = sorted(p.name for p in out.glob("frame_*.png"))
    assert names[0] == "frame_000010.png" and len(names) == 45  # ceil(1.5 s * 29.97)
    assert image_header(out / names[0]) == (48, 27, 3, "uint16")
    assert "rendered 45 frames (skipped 0 already done)" in stdout and "x realtime" in stdout
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings["reactivity"]["gains"] == {"bass": 2.0} and settings["seed"] == 3
    assert settings["audio"]["smoothing"]["onset"] == [0.0, 60.0]
    code, stdout, _ = run_cli(capsys, "render", audio, "--style", style, "-o", out, "--size", "48x27",
                              "--fps", "29.97", "--format", "png", "--png-depth", "16", "--frame-start", "10",
                              "--gain", "bass=2", "--smoothing", "onset=0,60", "--seed", "3", "-q")
    assert code == 0 and "rendered 0 frames (skipped 45 already done)" in stdout


def test_render_to_mp4(files, tmp_path, capsys):
    audio, style = files
    code, _, _ = run_cli(capsys, "render", audio, "--style", style, "-o", tmp_path / "v.mp4", "--size", "48x28", "-q")
    assert code == 0
    info = probe_video(tmp_path / "v.mp4")
    assert sorted(s["codec"] for s in info["streams"]) == ["aac", "h264"]
    assert info["duration"] == pytest.approx(1.5, abs=2e-3)


def test_bad_input_is_one_line_and_exit_code_2(files, tmp_path, capsys, monkeypatch):
    audio, style = files
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"definitely not safetensors")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = ["render", audio, "--style", style, "-o", tmp_path / "out", "--size", "48x28"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cases = [
        (["render", audio, "--style", "no-such-style", "-o", tmp_path / "o"], "no style named 'no-such-style'"),
        (["render", audio, "--style", corrupt, "-o", tmp_path / "o"], "not an Audio CPPN style file"),
        (["render", tmp_path / "missing.wav", "-o", tmp_path / "o"], "audio file not found"),
        (base[:-1] + ["12x"], "size must be WIDTHxHEIGHT"),
        (base + ["--frames", "40-99"], "frames 40-99 are outside the track: it has frames 1-45"),
        (base + ["--frames", "9-3"], "frame range must run forwards"),
        (["render", audio, "--style", style, "-o", blocker / "sub"], "file is a file, not a folder"),
        (["render", audio, "--style", style, "-o", blocker / "v.mp4"], "file is a file, not a folder"),
        (["render", audio, "--style", style, "-o", "/proc/frames"], "cannot write to /proc/frames"),
        (base + ["--device", "cuda"], "--device cuda was requested"),
        (base + ["--fps", "fast"], "fps must be a number"),
        (base + ["--gain", "cowbell=2"], "unknown feature in gains"),
        (base + ["--gain", "bass"], "--gain must look like FEATURE=X"),
        (base + ["--smoothing", "onset=5"], "--smoothing must look like FEATURE=ATTACK,RELEASE"),
        (base + ["--reactivity", "-1"], "reactivity amount must be a number from 0 to 100"),
        (base + ["--reactivity", "1e39"], "reactivity amount must be a number from 0 to 100"),
        (base + ["--gain", "bass=1e40"], "gain for bass must be a number from 0 to 100"),
        (base + ["--duration", "inf"], "duration must be a finite number > 0 seconds"),
        (base + ["--duration", "0"], "duration must be a finite number > 0 seconds"),
        (["render", audio, "--style", style, "-o", tmp_path / "odd.mp4", "--size", "47x27"], "even width"),
    ]
    for argv, message in cases:
        code, stdout, stderr = run_cli(capsys, *argv)
        assert code == 2, (argv, stderr)
        assert stderr.startswith("error: ") and message in stderr.splitlines()[0], (argv, stderr)
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 2  # message + optional fix


def test_demo_renders_the_bundled_track_into_frames_and_an_mp4(tmp_path, capsys):
    code, stdout, _ = run_cli(capsys, "demo", "--out", tmp_path, "--size", "32x18", "-q")
    assert code == 0
    seconds = probe_audio(demo_track_path()).duration
    frames = sorted((tmp_path / "demo").glob("frame_*.exr"))
    n = frame_count_for_seconds(seconds, Fraction(30))
    assert len(frames) == n and frames[0].name == "frame_000001.exr"
    info = probe_video(tmp_path / "demo.mp4")
    assert [s["frames"] for s in info["streams"] if s["type"] == "video"] == [n]
    assert info["duration"] == pytest.approx(seconds, abs=2e-3)
    assert f"rendered {n} frames" in stdout
    # a rerun resumes; after a change of settings the demo replaces its own old frames
    code, stdout, _ = run_cli(capsys, "demo", "--out", tmp_path, "--size", "32x18", "-q")
    assert code == 0 and f"skipped {n} already done" in stdout
    code, stdout, stderr = run_cli(capsys, "demo", "--out", tmp_path, "--size", "48x28", "-q")
    assert code == 0 and "re-rendering the demo" in stderr and f"rendered {n} frames" in stdout
    assert image_header(frames[0])[:2] == (48, 28)


def test_progress_shows_frames_per_second_and_eta_and_the_close_gives_the_realtime_factor(files, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    audio, style = files
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "backend", "render", str(audio), "--style", str(style),
                             "-o", str(tmp_path / "out"), "--size", "32x18"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert result.returncode == 0, result.stderr
    bar = result.stderr.replace("\r", "\n").splitlines()
    final = [line for line in bar if line.startswith("render") and "45/45" in line]
    assert final, result.stderr  # the render bar reached every frame ...
    assert "frame/s" in final[-1] and "<" in final[-1]  # ... with its rate and time left (elapsed<remaining)
    assert any(line.startswith("analyse") for line in bar)
    # piped (a log file, CI): a few lines in all, not one redraw per frame
    assert len([line for line in bar if line.startswith("render")]) <= 6, result.stderr
    closing = result.stdout.strip().splitlines()[-1]
    assert closing.startswith("rendered 45 frames") and "frames/s" in closing and "x realtime" in closing


def test_beat_hints_reach_the_render_manifest(files, tmp_path, capsys):
    """--bpm, --tempo-range and --beats-file are analysis settings: recorded, so a resume must match them."""
    audio, style = files
    beats = tmp_path / "beats.txt"
    beats.write_text("# exported from a DJ tool\n0.25\n0.75, downbeat\n1.25\n")
    out = tmp_path / "hinted"
    code, _, _ = run_cli(capsys, "render", audio, "--style", style, "-o", out, "--size", "32x18",
                         "--bpm", "120", "--tempo-range", "70-140", "--beats-file", beats, "-q")
    assert code == 0
    analysis = json.loads((out / "manifest.json").read_text())["settings"]["audio"]
    assert (analysis["bpm"], analysis["tempo_range"], analysis["beat_times"]) == (120.0, [70.0, 140.0],
                                                                                  [0.25, 0.75, 1.25])
    code, _, err = run_cli(capsys, "render", audio, "--style", style, "-o", out, "--size", "32x18",
                           "--bpm", "100", "--tempo-range", "70-140", "--beats-file", beats, "-q")
    assert code == 2 and "bpm: 120.0 -> 100.0" in err
    beats.write_text("0.25\nsoon\n")
    code, _, err = run_cli(capsys, "render", audio, "--style", style, "-o", tmp_path / "bad", "-q",
                           "--beats-file", beats)
    assert code == 2 and "line 2: expected a time in seconds" in err
