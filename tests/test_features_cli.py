"""``audio-cppn features`` as a user runs it: files written, and one clear line for every bad input."""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.audio.names import FEATURE_NAMES
from tests.helpers.cli import options_without_help
from tests.helpers.signals import click_track, tone, write_audio

ROOT = Path(__file__).resolve().parent.parent


def _inputs(folder: Path) -> dict[str, Path]:
    """Every kind of bad input the command must refuse, plus one good file."""
    good = write_audio(folder / "good.wav", click_track([0.5, 1.2, 2.0], sr=44100, duration=3.0), 44100)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("not audio at all\n" * 50)
    write_audio(folder / "blip.wav", tone(440, sr=44100, duration=0.1), 44100)
    for fmt in ("wav", "flac", "mp3"):
        whole = write_audio(folder / f"whole.{fmt}", click_track([0.5, 1.5, 2.5], sr=44100, duration=3.0), 44100)
        data = whole.read_bytes()
        (folder / f"cut.{fmt}").write_bytes(data[: len(data) // 2])
        whole.unlink()
    (folder / "a folder").mkdir()
    (folder / "plain_file").write_text("x")
    return {"good": good}


BAD = {  # id: (arguments after 'features' with {d} the folder, expected message)
    "missing": (["{d}/missing.wav"], r"^error: audio file not found: .*missing\.wav$"),
    "empty": (["{d}/empty.wav"], r"empty\.wav is empty \(0 bytes\); expected wav, flac, ogg, mp3"),
    "text": (["{d}/notes.wav"], r"notes\.wav is not a readable audio file \(.*\); expected wav"),
    "truncated-wav": (["{d}/cut.wav"],
                      r"cut\.wav is truncated: its header promises 3\.00 s of audio but the file holds 1\.5\d s"),
    "truncated-flac": (["{d}/cut.flac"], r"cut\.flac is truncated or damaged: flac decoder lost sync"),
    "truncated-mp3": (["{d}/cut.mp3"],
                      r"cut\.mp3 is truncated or damaged: its header promises 3\.00 s but only 1\.\d\d s"),
    "short": (["{d}/blip.wav"], r"blip\.wav holds 0\.10 s of audio; analysis needs at least 0\.5 s"),
    "directory": (["{d}/a folder"], r"a folder is a directory; expected wav"),
    "fps-zero": (["{d}/good.wav", "--fps", "0"], r"fps must be > 0 and at most 200, got 0"),
    "fps-negative": (["{d}/good.wav", "--fps", "-1"], r"fps must be > 0 and at most 200, got -1"),
    "fps-nan": (["{d}/good.wav", "--fps", "nan"], r"fps must be a number like 30, 29\.97 or 30000/1001, got 'nan'"),
    "output-folder-missing": (["{d}/good.wav", "-o", "{d}/no/such/dir/f.npz"],
                              r"cannot write .*f\.npz: folder .*dir does not exist"),
    "output-under-a-file": (["{d}/good.wav", "-o", "{d}/plain_file/f.npz"],
                            r"cannot write .*f\.npz: .*plain_file is not a folder"),
    "output-suffix": (["{d}/good.wav", "-o", "{d}/f.txt"],
                      r"output .*f\.txt must end in \.npz, \.csv, \.json, got '\.txt'"),
    "output-empty": (["{d}/good.wav", "-o", ""], r"must end in \.npz, \.csv, \.json, got 'no suffix'"),
    # root passes every permission check, so only a real write tells: /proc takes no new files
    "output-unwritable": (["{d}/good.wav", "-o", "/proc/f.npz"], r"cannot write to /proc: "),
    # the features file could be written, the plot not: neither is written
    "plot-unwritable": (["{d}/good.wav", "-o", "{d}/features.npz", "--plot", "/proc/f.png"],
                        r"cannot write to /proc: "),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Run every bad case as a real subprocess (a few at a time: each starts a Python)."""
    folder = tmp_path_factory.mktemp("bad inputs")
    _inputs(folder)
    before = sorted(p.name for p in folder.rglob("*"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(case):
        args, _ = BAD[case]
        args = [a.format(d=folder) for a in args]
        if not any(a == "-o" for a in args):
            args += ["-o", str(folder / "features.npz")]
        if "--plot" not in args:
            args += ["--plot", str(folder / "features.png")]
        return subprocess.run([sys.executable, "-m", "backend", "features", *args], capture_output=True,
                              text=True, env=env, cwd=folder, timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(BAD, pool.map(run, BAD), strict=True))
    return results, folder, before


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_one_line_and_exit_code_2(bad_runs, case):
    results, folder, before = bad_runs
    result = results[case]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and re.search(BAD[case][1], lines[0]), lines[0]
    assert result.returncode == 2
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written, not even half


def test_writes_csv_and_plot_with_scene_frame_numbers(tmp_path, capsys):
    clicks = click_track([0.5, 1.25, 2.0], sr=48000, duration=2.5, channels=2)
    audio = write_audio(tmp_path / "clicks.flac", clicks, 48000)
    code = main(["features", str(audio), "--fps", "29.97", "--frame-start", "1001",
                 "-o", str(tmp_path / "f.csv"), "--plot", str(tmp_path / "f.png")])
    out = capsys.readouterr().out
    assert code == 0
    assert "75 frames (1001-1075) at 30000/1001 fps" in out  # ceil(2.5 s * 29.97) = 75
    rows = (tmp_path / "f.csv").read_text().splitlines()
    assert rows[0] == ",".join(["frame", "time", *FEATURE_NAMES]) and len(rows) == 76
    table = np.array([r.split(",") for r in rows[1:]], dtype=float)
    assert table[0, 0] == 1001 and table[-1, 0] == 1075
    onset = table[:, 2 + FEATURE_NAMES.index("onset")]
    for t in (0.5, 1.25, 2.0):  # each click's frame holds a hit
        frame = 1001 + round(t * 30000 / 1001)
        assert onset[frame - 1001 - 1: frame - 1001 + 2].max() > 0.5

    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "f.png")
    assert image.shape[0] > 600 and image.shape[1] > 1000 and image[..., :3].std() > 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.flac", "f.csv", "f.png"]


def test_without_output_prints_every_feature(tmp_path, capsys):
    audio = write_audio(tmp_path / "a.wav", tone(440, sr=22050, duration=1.0), 22050)
    assert main(["features", str(audio), "--fps", "24"]) == 0
    out = capsys.readouterr().out
    assert "24 frames (1-24) at 24 fps" in out and "no beats found" in out
    for name in FEATURE_NAMES:
        assert re.search(rf"^{name}\s", out, flags=re.MULTILINE), name


def test_help_describes_every_option_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["features", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert not options_without_help("features")
    assert "examples:" in text and "ceil(d * fps)" in text and "29.97" in text


def test_the_real_command_runs_end_to_end(tmp_path):
    audio = write_audio(tmp_path / "clicks.mp3", click_track([0.4, 1.0, 1.7], sr=44100, duration=2.2), 44100)
    result = subprocess.run([sys.executable, "-m", "backend", "features", str(audio), "--fps", "60",
                             "-o", str(tmp_path / "f.npz")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    with np.load(tmp_path / "f.npz") as data:
        assert data["features"].shape == (132, len(FEATURE_NAMES)) and str(data["fps"]) == "60"
