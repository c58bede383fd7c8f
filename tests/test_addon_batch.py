"""``batch.py``: the whole job in one headless line, run as ``python batch.py -- ...`` under each bpy.

It registers the add-on it sits in (nothing is installed in the isolated user folder), starts its own
backend from ``--backend-command``, renders through it, loads the frames, encodes with Blender and
stops the backend; a bad argument is one line ``error: ...`` and exit code 2.
"""

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers.signals import click_track, irregular_times, write_audio

ROOT = Path(__file__).resolve().parent.parent
BATCH = ROOT / "blender_addon" / "batch.py"
SERVE = ROOT / ".venv" / "bin" / "audio-cppn"
BLENDERS = ("4.2", "4.5", "5.0")


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    times = irregular_times(4, start=0.3, seed=9)
    duration = float(times[-1]) + 0.4
    path = write_audio(tmp_path_factory.mktemp("batch") / "clicks.wav",
                       click_track(times, sr=22050, duration=duration, click_ms=10), 22050)
    return path, duration


def batch(version: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    python = ROOT / f".venv-blender-{version}" / "bin" / "python"
    if not python.exists() or not SERVE.exists():
        pytest.fail(f"{python} or {SERVE} is missing: `make test` builds them")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")  # the add-on is not enabled there
    return subprocess.run([str(python), str(BATCH), "--", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("version", BLENDERS)
def test_one_line_renders_loads_and_encodes(version, clicks, tmp_path):
    audio, duration = clicks
    out = tmp_path / "video.mp4"
    proc = batch(version, tmp_path, "--audio", str(audio), "--style", "aurora", "--output", str(out),
                 "--start-backend", "--backend-command", str(SERVE), "--data-dir", str(tmp_path / "data"),
                 "--fps", "29.97", "--size", "64x36", "--format", "png")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Audio CPPN: wrote {out}" in proc.stdout and "Audio CPPN render: Frame " in proc.stdout
    frames = sorted((tmp_path / "video_frames").glob("frame_*.png"))
    count = int(np.ceil(duration * 30000 / 1001))
    assert [p.name for p in frames] == [f"frame_{n:06d}.png" for n in range(1, count + 1)]
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and video.average_rate == Fraction(30000, 1001)
        assert (video.codec_context.width, video.codec_context.height) == (64, 36)
        assert sum(1 for _ in container.decode(video=0)) == count
    with av.open(str(out)) as container:
        has_audio = "Audaspace" not in proc.stdout + proc.stderr
        assert [s.codec_context.name for s in container.streams.audio] == (["aac"] if has_audio else [])
    assert not (tmp_path / "data" / "server.json").exists()  # the backend it started is stopped


@pytest.mark.parametrize("args,message", [
    (["--style", "no_such_style"], "no_such_style"),
    (["--fps", "fast"], "--fps must be a number like 24, 29.97 or 30000/1001"),
    (["--size", "big"], "--size must be WIDTHxHEIGHT"),
])
def test_bad_arguments_are_one_line_errors(clicks, tmp_path, args, message):
    audio, _ = clicks
    base = ["--audio", str(audio), "--style", "aurora", "--output", str(tmp_path / "v.mp4"), "--start-backend",
            "--backend-command", str(SERVE), "--data-dir", str(tmp_path / "data")]
    for i in range(0, len(args), 2):  # the case's value replaces the default one
        if args[i] in base:
            base[base.index(args[i]) + 1] = args[i + 1]
        else:
            base += args[i:i + 2]
    proc = batch("5.0", tmp_path, *base)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors and message in errors[-1] and "Traceback" not in proc.stderr
    assert not (tmp_path / "v.mp4").exists()
    assert not (tmp_path / "data" / "server.json").exists()


def test_without_a_backend_it_says_how_to_start_one(clicks, tmp_path):
    audio, _ = clicks
    proc = batch("5.0", tmp_path, "--audio", str(audio), "--style", "aurora", "--output", str(tmp_path / "v.mp4"),
                 "--data-dir", str(tmp_path / "empty"))
    assert proc.returncode == 2
    assert "error: Backend not running" in proc.stderr and "Traceback" not in proc.stderr
