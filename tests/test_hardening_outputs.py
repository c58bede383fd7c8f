"""Outputs under attack: no render loses a user's file, mixes two renders or leaves half-done work.

Each case runs the real CLI on inputs built here and asserts the exit code, the one-line
message, no traceback, and that every file that was there before is byte-identical after.
"""

import json
import os
import signal
import time

import numpy as np
import pytest
import soundfile as sf

from backend.model.cppn import CPPN, CPPNConfig
from backend.render.folder_lock import locked_by
from backend.styles.library import save_style
from tests.helpers.hostile import ROOT, assert_one_line_error, assert_untouched, cli, cli_process, snapshot, start_cli
from tests.helpers.signals import pulse_train, tone, write_audio

SMALL = ["--size", "32x18", "-q"]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A 1.5 s track, its MP4 (audio + video: a legal input too), and two small styles."""
    folder = tmp_path_factory.mktemp("kit")
    y, _ = pulse_train(120, sr=22050, duration=1.5)
    audio = write_audio(folder / "song.wav", y, 22050)
    style = save_style(CPPN(CPPNConfig(seed=4, hidden=16, depth=2)), folder / "a.safetensors", name="a",
                       kind="procedural")
    other = save_style(CPPN(CPPNConfig(seed=5, hidden=16, depth=2)), folder / "b.safetensors", name="b",
                       kind="procedural")
    from backend.render.job import RenderConfig, render

    clip = render(audio, style, folder / "clip.mp4", config=RenderConfig(width=32, height=18)).output
    return {"audio": audio, "style": style, "other": other, "clip": clip}


def test_video_never_replaces_the_input_or_a_file_it_did_not_write(kit, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(kit["clip"].read_bytes())  # a video with a sound track: a legal audio input
    os.link(clip, tmp_path / "hard.mp4")
    (tmp_path / "link.mp4").symlink_to(clip)
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "mine.mp4").write_bytes(b"someone's video")
    wav = tmp_path / "song.wav"
    wav.write_bytes(kit["audio"].read_bytes())
    before = snapshot(tmp_path)
    style = kit["style"]
    cases = [
        (["render", clip, "-s", style, "-o", clip, "--overwrite"], "is the input audio file"),
        (["render", clip, "-s", style, "-o", tmp_path / "f", "--video", clip, "--overwrite"], "is the input audio file"),
        (["render", clip, "-s", style, "-o", tmp_path / "f", "--video", tmp_path / "hard.mp4", "--overwrite"],
         "is the input audio file"),
        (["render", clip, "-s", style, "-o", tmp_path / "link.mp4", "--overwrite"], "is the input audio file"),
        (["render", wav, "-s", style, "-o", tmp_path / "f", "--video", wav], "must end in .mp4"),
        (["render", wav, "-s", style, "-o", tmp_path / "f", "--video", tmp_path / "notes.txt"], "must end in .mp4"),
        (["render", wav, "-s", style, "-o", tmp_path / "f", "--video", tmp_path / "mine.mp4"], "already exists"),
        (["render", wav, "-s", style, "-o", tmp_path / "mine.mp4"], "already exists"),
    ]
    for argv, message in cases:
        assert_one_line_error(*cli(capsys, *argv, *SMALL)[::2], message)
        assert_untouched(before, tmp_path)
    # The video a folder's own render wrote is re-encoded on resume; a file put there since is not.
    out, video = tmp_path / "frames", tmp_path / "v.mp4"
    assert cli(capsys, "render", wav, "-s", style, "-o", out, "--video", video, *SMALL)[0] == 0
    code, stdout, _ = cli(capsys, "render", wav, "-s", style, "-o", out, "--video", video, *SMALL)
    assert code == 0 and "skipped 45 already done" in stdout
    video.write_bytes(b"the user's own cut")
    assert_one_line_error(*cli(capsys, "render", wav, "-s", style, "-o", out, "--video", video, *SMALL)[::2],
                          "already exists")
    assert video.read_bytes() == b"the user's own cut"


def test_a_second_writer_is_refused_at_once_while_a_render_runs(kit, tmp_path):
    audio = write_audio(tmp_path / "long.wav", tone(220, sr=22050, duration=90.0), 22050)
    style = save_style(CPPN(CPPNConfig(seed=2)), tmp_path / "slow.safetensors", name="slow", kind="procedural")
    out = tmp_path / "out"
    # 2700 frames: still running long after the second process has started and been refused
    first = start_cli("render", audio, "-s", style, "-o", out, "--size", "320x180", "--device", "cpu", "-q")
    try:
        deadline = time.monotonic() + 240
        while (locked_by(out) != first.pid or len(list(out.glob("frame_*.exr"))) < 3) and first.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, first.communicate()
        frames_before = {k: v for k, v in snapshot(out).items() if k.startswith("frame_")}
        second = cli_process("render", audio, "-s", kit["other"], "-o", out, "--overwrite", "--frames", "1-20",
                             "--size", "320x180", "-q")
        assert first.poll() is None, "the first render ended before the second was refused"
        assert_one_line_error(second.returncode, second.stderr, f"is being written by process {first.pid} right now")
        after = snapshot(out)
        assert all(after.get(k) == v for k, v in frames_before.items())  # --overwrite deleted nothing
        assert len([k for k in after if k.startswith("frame_")]) >= len(frames_before)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["style"]["name"] == "slow" and manifest["ranges"] == []  # still the first render's
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143
    assert locked_by(out) is None and not (out / ".audio-cppn.lock").exists()  # released, and no file left


def test_an_mp4_being_written_by_another_process_is_refused(kit, tmp_path, capsys):
    import subprocess
    import sys

    target = tmp_path / "clip.mp4"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom backend.render.folder_lock import "
                               "OutputLock\nwith OutputLock(sys.argv[1]):\n    print('held', flush=True)\n"
                               "    time.sleep(60)", str(target)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(tmp_path)
        assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", target, *SMALL)[::2],
                              f"is being written by process {holder.pid}")
        assert_untouched(before, tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_a_render_that_fails_before_its_first_frame_leaves_nothing_behind(kit, tmp_path, capsys):
    sr = 22050
    y = tone(220, sr=sr, duration=2.0)
    y[sr] = np.nan
    bad = tmp_path / "nan.wav"
    sf.write(bad, y, sr, subtype="FLOAT")
    (tmp_path / "existing").mkdir()
    before = snapshot(tmp_path)
    for out in (tmp_path / "new" / "deeper", tmp_path / "existing"):
        assert_one_line_error(*cli(capsys, "render", bad, "-s", kit["style"], "-o", out, *SMALL)[::2],
                              "NaN or infinite samples at 1.00 s")
        assert_untouched(before, tmp_path)  # no manifest, no lock file, no folder made for nothing
    assert_one_line_error(*cli(capsys, "render", bad, "-s", kit["style"], "-o", tmp_path / "n", "--seed",
                               "9" * 400, *SMALL)[::2], "argument --seed: must be a whole number")
    assert_untouched(before, tmp_path)
    y[sr] = 0.0  # the user fixes the file; the rerun is not blocked by what the failure left
    sf.write(bad, y, sr, subtype="FLOAT")
    code, stdout, _ = cli(capsys, "render", bad, "-s", kit["style"], "-o", tmp_path / "existing", *SMALL)
    assert code == 0 and "rendered 60 frames" in stdout


@pytest.mark.parametrize("fmt", ["exr", "png"])
def test_a_frame_cut_short_inside_a_finished_range_is_rendered_again(kit, tmp_path, capsys, fmt):
    out = tmp_path / "out"
    argv = ["render", kit["audio"], "-s", kit["style"], "-o", out, "--format", fmt, "--frames", "1-10", *SMALL]
    assert cli(capsys, *argv)[0] == 0
    assert json.loads((out / "manifest.json").read_text())["ranges"] == [[1, 10]]
    cut = out / f"frame_000005.{fmt}"
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) - 7])
    code, stdout, _ = cli(capsys, *argv)
    assert code == 0 and "rendered 1 frames (skipped 9 already done)" in stdout
    assert cut.read_bytes() == whole


def test_verify_decodes_every_frame_and_catches_damage_of_the_same_size(kit, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["render", kit["audio"], "-s", kit["style"], "-o", out, "--format", "png", "--frames", "1-6", *SMALL]
    assert cli(capsys, *argv)[0] == 0
    damaged = out / "frame_000003.png"
    whole = bytearray(damaged.read_bytes())
    data = whole.index(b"IDAT") + 8
    whole_copy = bytes(whole)
    whole[data: data + 16] = bytes(16)  # same length, broken pixels (and CRC)
    damaged.write_bytes(bytes(whole))
    assert "skipped 6 already done" in cli(capsys, *argv)[1]  # the cheap check trusts a finished range ...
    code, stdout, _ = cli(capsys, *argv, "--verify")  # ... --verify reads every pixel
    assert code == 0 and "rendered 1 frames (skipped 5 already done)" in stdout
    assert damaged.read_bytes() == whole_copy


def test_an_output_folder_named_like_an_mp4_is_refused_up_front(kit, tmp_path, capsys):
    (tmp_path / "X.mp4").mkdir()
    (tmp_path / "X.mp4" / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", tmp_path / "X.mp4",
                                   *extra, *SMALL)[::2], "X.mp4 is a folder; an MP4 output must be a file")
        assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", tmp_path / "f",
                                   "--video", tmp_path / "X.mp4", *extra, *SMALL)[::2], "is a folder")
        assert_untouched(before, tmp_path)


@pytest.mark.parametrize("output", ["clip.mp4", "frames"])
def test_sigterm_stops_a_render_and_removes_its_unfinished_files(tmp_path, output):
    audio = write_audio(tmp_path / "long.wav", tone(220, sr=22050, duration=6.0), 22050)
    style = save_style(CPPN(CPPNConfig(seed=2)), tmp_path / "s.safetensors", name="s", kind="procedural")
    (tmp_path / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    target = tmp_path / output
    process = start_cli("render", audio, "-s", style, "-o", target, "--size", "160x90", "--device", "cpu", "-q")
    deadline = time.monotonic() + 240
    while locked_by(target) != process.pid and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.0)  # well into the frames (the outcome is the same whenever the signal lands)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert_one_line_error(process.returncode, stderr, "terminated", exit_code=143)
    assert_untouched(before, tmp_path, new_allowed=True)
    left = set(snapshot(tmp_path)) - set(before)
    hidden = [name for name in left if os.path.basename(name).startswith(".")]
    assert not hidden, hidden  # no temporary MP4 or frame, no lock file
    if output == "clip.mp4":
        assert left == set()  # an unfinished video is not left at all
    else:
        from backend.writers.image import read_image

        assert all(read_image(tmp_path / name).shape == (90, 160, 4) for name in left if name.endswith(".exr"))


def test_a_damaged_folder_is_one_line_and_overwrite_starts_it_afresh(kit, tmp_path, capsys):
    damaged = {
        "deep": ("[" * 100_000 + "]" * 100_000, "is not a readable render manifest"),
        "ranges": (json.dumps({"format_version": 1, "ranges": "all of them"}), "has damaged frame ranges"),
        "audio": (json.dumps({"format_version": 1, "ranges": [], "audio": [1]}), "has a damaged 'audio' entry"),
    }
    for name, (text, _) in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(text)
    (tmp_path / "locked" / ".audio-cppn.lock").mkdir(parents=True)  # something else where our lock goes
    before = snapshot(tmp_path)
    for name, (_, message) in damaged.items():
        assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", tmp_path / name,
                                   *SMALL)[::2], message)
    assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", tmp_path / "locked",
                               *SMALL)[::2], "cannot lock")
    assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", "", *SMALL)[::2],
                          "the output path is empty")
    assert_untouched(before, tmp_path)
    code, stdout, _ = cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", tmp_path / "ranges",
                          "--overwrite", *SMALL)
    assert code == 0 and "rendered 45 frames" in stdout
    assert json.loads((tmp_path / "ranges" / "manifest.json").read_text())["ranges"] == [[1, 45]]


def test_a_read_only_folder_is_one_line_before_any_work(kit, tmp_path):
    import shutil
    import subprocess
    import sys

    ro = tmp_path / "ro"
    (ro / "done").mkdir(parents=True)
    (ro / "keep.txt").write_text("mine")
    assert cli_process("render", kit["audio"], "-s", kit["style"], "-o", ro / "done", *SMALL).returncode == 0
    for folder in (ro / "done", ro):
        folder.chmod(0o555)
    before = snapshot(tmp_path)
    drop = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c"]
    if shutil.which("capsh") is None:
        pytest.skip("no capsh here: cannot drop root's right to write anywhere")
    if subprocess.run([*drop, f"touch {ro}/probe"], capture_output=True).returncode == 0:
        (ro / "probe").unlink()
        pytest.skip("dropping CAP_DAC_OVERRIDE did not make a 0555 folder read-only on this machine")
    try:
        for target, extra in ((ro / "new", []), (ro / "done", ["--overwrite"]), (ro / "v.mp4", [])):
            command = " ".join(f"'{a}'" for a in [sys.executable, "-m", "backend", "render", kit["audio"], "-s",
                                                   kit["style"], "-o", target, *extra, *SMALL])
            result = subprocess.run([*drop, command], capture_output=True, text=True, env={**os.environ,
                                    "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=300)
            assert_one_line_error(result.returncode, result.stderr, "Permission denied")
            assert "cannot write to" in result.stderr or "cannot create" in result.stderr
            assert_untouched(before, tmp_path)
    finally:
        for folder in (ro, ro / "done"):
            folder.chmod(0o755)
