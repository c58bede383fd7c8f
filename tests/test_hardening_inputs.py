"""Inputs under attack: pipes, devices, long names, deep JSON, absurd numbers, huge files, full disks.

Each case is one clear ``error:`` line with exit code 2 (never a traceback, never a hang), and
every file that was there before is byte-identical after.
"""

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from backend.model.cppn import CPPN, CPPNConfig
from backend.styles.library import save_style
from tests.helpers.hostile import ENV, assert_one_line_error, assert_untouched, cli, cli_process, snapshot
from tests.helpers.signals import pulse_train, tone, write_audio

SMALL = ["--size", "32x18", "-q"]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kit")
    y, _ = pulse_train(120, sr=22050, duration=1.5)
    audio = write_audio(folder / "song.wav", y, 22050)
    style = save_style(CPPN(CPPNConfig(seed=4, hidden=16, depth=2)), folder / "lib" / "good.safetensors",
                       name="good", kind="procedural")
    return {"audio": audio, "style": style}


def safetensors_bytes(header: dict) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text


def test_pipes_and_devices_are_refused_by_what_they_are_never_opened(kit, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "good.safetensors").write_bytes(kit["style"].read_bytes())
    os.mkfifo(lib / "x.safetensors")
    os.mkfifo(tmp_path / "track.wav")
    os.mkfifo(tmp_path / "feat.npz")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "manifest.json")
    before = snapshot(tmp_path)
    listing = cli_process("styles", "--styles-dir", lib, timeout=120)  # a hang fails by timeout here
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert "good" in listing.stdout and "1 styles in" in listing.stdout
    assert listing.stderr.strip() == f"warning: skipped style file {lib / 'x.safetensors'} is a named pipe (FIFO), not a file"
    cases = [
        (["render", tmp_path / "track.wav", "-s", kit["style"], "-o", tmp_path / "o"], "is a named pipe (FIFO), not a file"),
        (["render", "/dev/zero", "-s", kit["style"], "-o", tmp_path / "o"], "/dev/zero is a character device, not a file"),
        (["features", tmp_path / "track.wav"], "is a named pipe (FIFO)"),
        (["render", kit["audio"], "-s", lib / "x.safetensors", "-o", tmp_path / "o"], "is a named pipe (FIFO)"),
        (["render", kit["audio"], "-s", "x", "--styles-dir", lib, "-o", tmp_path / "o"],
         "style 'x' in " + str(lib) + " is unusable: x.safetensors is a named pipe (FIFO)"),
        (["render", kit["audio"], "-s", kit["style"], "-o", out], "is a named pipe (FIFO), not a file"),
        (["features", kit["audio"], "-o", tmp_path / "feat.npz"], "feat.npz is a named pipe (FIFO); give the path"),
    ]
    for argv, message in cases:
        result = cli_process(*argv, *(SMALL if argv[0] == "render" else []), timeout=120)
        assert_one_line_error(result.returncode, result.stderr, message)
        assert_untouched(before, tmp_path)


LONG = "n" * 256  # one byte over what a file name may hold


def test_every_path_a_user_gives_is_checked_for_length_up_front(kit, tmp_path, capsys):
    before = snapshot(tmp_path)
    audio, style = kit["audio"], kit["style"]
    cases = [
        ["render", tmp_path / f"{LONG}.wav", "-s", style, "-o", tmp_path / "o", *SMALL],
        ["render", audio, "-s", style, "-o", tmp_path / LONG, *SMALL],
        ["render", audio, "-s", style, "-o", tmp_path / LONG / "frames", *SMALL],
        ["render", audio, "-s", style, "-o", tmp_path / f"{LONG}.mp4", *SMALL],
        ["render", audio, "-s", style, "-o", tmp_path / "o", "--video", tmp_path / f"{LONG}.mp4", *SMALL],
        ["render", audio, "-s", tmp_path / f"{LONG}.safetensors", "-o", tmp_path / "o", *SMALL],
        ["render", audio, "-s", "good", "--styles-dir", tmp_path / LONG, "-o", tmp_path / "o", *SMALL],
        ["styles", "--styles-dir", tmp_path / LONG],
        ["features", audio, "-o", tmp_path / f"{LONG}.npz"],
        ["features", tmp_path / f"{LONG}.wav"],
        ["features", audio, "--plot", tmp_path / f"{LONG}.png"],
    ]
    for argv in cases:
        assert_one_line_error(*cli(capsys, *argv)[::2], "bytes long; a file or folder name can be at most 255 bytes")
        assert_untouched(before, tmp_path)


def test_train_and_score_check_their_paths_before_any_slow_work(kit, tmp_path, capsys):
    """Training and scoring take paths too (the library, a features file, CLIP weights, a CLIP
    folder): each pipe, device or over-long name is one line before CLIP loads or audio is read."""
    os.mkfifo(tmp_path / "feat.npz")
    os.mkfifo(tmp_path / "library")
    lib = kit["style"].parent
    before = snapshot(tmp_path)
    train = ["train", "ink in water", "--name", "t", "--styles-dir", lib, "--device", "cpu"]
    cases = [
        (["train", "ink", "--name", "t", "--styles-dir", tmp_path / "library"],
         f"style library {tmp_path / 'library'} is a named pipe (FIFO), not a folder"),
        (["train", "ink", "--name", "t", "--styles-dir", "/dev/null"], "style library /dev/null is a character device"),
        (["train", "ink", "--name", "t", "--styles-dir", tmp_path / LONG], "the style library name"),
        ([*train, "--pretrained", "random", "--features", tmp_path / "feat.npz"], "features file " + str(tmp_path / "feat.npz") + " is a named pipe"),
        ([*train, "--pretrained", "random", "--features", tmp_path / f"{LONG}.npz"], "the features file name"),
        ([*train, "--pretrained", "/dev/zero"], "CLIP weights file /dev/zero is a character device, not a file"),
        ([*train, "--pretrained", tmp_path / f"{LONG}.pt"], "the CLIP weights file name"),
        ([*train, "--pretrained", f"local-dir:{tmp_path / 'library'}"], "is a named pipe (FIFO), not a folder"),
        (["score", kit["style"], "--prompt", "ink", "--pretrained", "/dev/zero", "--no-second-clip"],
         "CLIP weights file /dev/zero is a character device"),
        (["score", kit["style"], "--prompt", "ink", "--pretrained", "random", "--audio", tmp_path / "feat.npz"],
         "is a named pipe (FIFO), not a file"),
        (["score", kit["style"], "--prompt", "ink", "--pretrained", "random", "--audio", tmp_path / f"{LONG}.wav"],
         "the audio file name"),
    ]
    for argv, message in cases:
        assert_one_line_error(*cli(capsys, *argv)[::2], message)
        assert_untouched(before, tmp_path)
    assert sorted(p.name for p in lib.iterdir()) == ["good.safetensors"]  # no style, checkpoint or preview begun


def test_names_as_long_as_the_file_system_allows_work_and_leave_nothing_beside_them(kit, tmp_path, capsys):
    name = "v" * 251 + ".mp4"  # 255 bytes: legal, though every temporary name beside it is longer
    code, stdout, stderr = cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", tmp_path / name, *SMALL)
    assert code == 0, stderr
    folder = tmp_path / ("f" * 255)
    assert cli(capsys, "render", kit["audio"], "-s", kit["style"], "-o", folder, *SMALL)[0] == 0
    assert cli(capsys, "features", kit["audio"], "-o", tmp_path / ("x" * 250 + ".json"))[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, folder.name, "x" * 250 + ".json"])
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_deeply_nested_json_in_a_style_header_is_one_warning_never_a_crash(kit, tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "good.safetensors").write_bytes(kit["style"].read_bytes())
    deep = "[" * 200_000 + "]" * 200_000
    (lib / "inner.safetensors").write_bytes(safetensors_bytes({"__metadata__": {"audio_cppn": deep}}))
    outer = safetensors_bytes({"__metadata__": {"audio_cppn": "{}"}, "x": json.loads("[" * 500 + "]" * 500)})
    (lib / "outer.safetensors").write_bytes(outer)
    before = snapshot(tmp_path)
    code, stdout, stderr = cli(capsys, "styles", "--styles-dir", lib)
    assert code == 0 and "good" in stdout and "1 styles in" in stdout
    warnings = stderr.strip().splitlines()
    assert len(warnings) == 2 and all("nested more than 64 levels deep" in w for w in warnings), stderr
    for name in ("inner", "outer"):
        assert_one_line_error(*cli(capsys, "render", kit["audio"], "-s", name, "--styles-dir", lib, "-o",
                                   tmp_path / "o", *SMALL)[::2], "nested more than 64 levels deep")
    assert_untouched(before, tmp_path)


def test_absurd_numbers_are_refused_when_parsed(kit, tmp_path, capsys):
    before = snapshot(tmp_path)
    base = ["render", kit["audio"], "-s", kit["style"], "-o", tmp_path / "o", "-q"]
    cases = [
        (base + ["--seed", "7" * 400], "argument --seed: must be a whole number from"),
        (base + ["--frame-start", "99999999999999999999"], "argument --frame-start: must be a whole number"),
        (base + ["--frame-start", "1e3"], "argument --frame-start: expected a whole number, got '1e3'"),
        (base + ["--frames", "1-" + "9" * 25], "frames must be A-B"),
        (base + ["--frames", "1-9999999999"], "frame numbers must be a whole number from 0 to 99999999"),
        (base + ["--fps", "inf"], "fps must be a number like 30"),
        (base + ["--fps", "1e-9"], "fps must be at least 0.001 (one frame per 1000 s), got 1e-9"),
        (base + ["--duration", "1e400"], "duration must be a finite number > 0 seconds, got inf"),
        (base + ["--size", "1" + "0" * 30 + "x10"], "frame width must be a whole number from 1 to 16384"),
        (base + ["--png-depth", "9" * 30], "argument --png-depth: must be a whole number"),
        (base + ["--frames", ""], "frames must be A-B"),
        (["features", kit["audio"], "--frame-start", "9" * 30], "argument --frame-start: must be a whole number"),
    ]
    for argv, message in cases:
        assert_one_line_error(*cli(capsys, *argv)[::2], message)
    assert_untouched(before, tmp_path)


def test_messages_say_what_is_true(kit, tmp_path, capsys):
    rng = np.random.default_rng(7)
    for i in range(12):  # random bytes under audio names: libsndfile sometimes guesses "a pipe"
        path = tmp_path / f"noise{i}.{('flac', 'wav', 'mp3', 'ogg')[i % 4]}"
        path.write_bytes(rng.integers(0, 256, 1000 + 731 * i, dtype=np.uint8).tobytes())
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "good.safetensors").write_bytes(kit["style"].read_bytes())
    (lib / "z.safetensors").mkdir()
    (lib / "gone.safetensors").symlink_to(tmp_path / "nowhere")
    (lib / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00junk!")
    before = snapshot(tmp_path)
    for path in sorted(tmp_path.glob("noise*")):
        line = assert_one_line_error(*cli(capsys, "features", path)[::2], "is not a readable audio file")
        assert "pipe" not in line and "does not exist" not in line
    base = ["render", kit["audio"], "--styles-dir", lib, "-o", tmp_path / "o", *SMALL]
    assert_one_line_error(*cli(capsys, *base, "-s", "z")[::2], "style 'z' in " + str(lib) + " is unusable: "
                          "z.safetensors is a folder, not a style file")
    assert_one_line_error(*cli(capsys, *base, "-s", "gone")[::2], "gone.safetensors is a link to a missing file")
    assert_one_line_error(*cli(capsys, *base, "-s", "junk")[::2], "is not an Audio CPPN style file")
    line = assert_one_line_error(*cli(capsys, *base, "-s", "nope")[::2], "no style named 'nope'")
    assert "(available: good)" in line  # broken entries are not offered
    assert_untouched(before, tmp_path)


def test_a_large_file_that_is_not_a_style_is_refused_from_its_first_bytes(kit, tmp_path, capsys):
    from backend.errors import InvalidInput
    from backend.styles.library import load_style

    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.write(os.urandom(64 << 20))
    padded = tmp_path / "padded.safetensors"
    padded.write_bytes(kit["style"].read_bytes() + bytes(64 << 20))  # a real header, then 64 MB it does not describe
    for path, message in ((big, "not an Audio CPPN style file"), (padded, "is corrupt: it is")):
        tracemalloc.start()
        with pytest.raises(InvalidInput, match=message):
            load_style(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 << 20, f"{path.name}: {peak / 1e6:.0f} MB allocated to refuse it"


def test_a_short_preview_of_a_long_track_analyses_and_reads_only_its_start(tmp_path, capsys):
    from backend.paths import file_fingerprint
    from backend.render.job import RenderConfig, render

    sr = 8000
    audio = write_audio(tmp_path / "long.wav", tone(200, sr=sr, duration=150.0), sr)
    style = save_style(CPPN(CPPNConfig(seed=1, hidden=8, depth=2)), tmp_path / "s.safetensors", name="s",
                       kind="procedural")
    seen = []
    config = RenderConfig(width=32, height=18, duration=2.0)
    render(audio, style, tmp_path / "out", config=config, progress=lambda e: seen.append(e) or True)
    analysed = max(e.done for e in seen if e.stage == "analyse")
    assert analysed == 30  # the preview's 2 s and the normalisation's 30 s of context, not 150 s
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["settings"]["audio"]["span_seconds"] == 30.0 and "sha256" not in manifest["audio"]
    assert manifest["audio"]["fingerprint"] == file_fingerprint(audio)
    # the whole track normalises differently: its frames must not be mixed with the preview's
    code, _, stderr = cli(capsys, "render", audio, "-s", style, "-o", tmp_path / "out", "--size", "32x18", "-q")
    assert_one_line_error(code, stderr, "span_seconds: 30.0 -> null")


def test_the_audio_fingerprint_reads_a_few_megabytes_of_any_file(tmp_path):
    from backend.paths import file_fingerprint

    huge = tmp_path / "huge.wav"
    with open(huge, "wb") as f:
        f.truncate(4 << 30)  # 4 GiB, sparse
    def read_bytes():
        return int(dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())["rchar"])
    before = read_bytes()
    first = file_fingerprint(huge)
    assert read_bytes() - before < 8 << 20
    with open(huge, "r+b") as f:
        f.seek((4 << 30) - 1000)
        f.write(b"x")
    assert file_fingerprint(huge) != first  # an edit near the end
    with open(huge, "r+b") as f:
        f.truncate((4 << 30) + 1)
    assert len({first, file_fingerprint(huge)}) == 2  # another length


FULL_DISK = textwrap.dedent("""
    import json, os, subprocess, sys
    mount, size, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mount], check=True)
    with open(os.path.join(mount, "keep.txt"), "w") as f:
        f.write("mine")
    run = subprocess.run([sys.executable, "-m", "backend", *argv], capture_output=True, text=True)
    files = sorted(os.path.relpath(os.path.join(d, n), mount) for d, dirs, names in os.walk(mount) for n in dirs + names)
    print(json.dumps({"code": run.returncode, "stderr": run.stderr, "files": files,
                      "keep": open(os.path.join(mount, "keep.txt")).read()}))
""")


def run_on_tiny_disk(tmp_path, size: str, *argv):
    """Run the CLI in a private mount namespace with ``tmp_path/disk`` a tmpfs of ``size``."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no unshare here ({exc}): cannot mount a tiny tmpfs to fill")
    if probe.returncode != 0:
        pytest.skip(f"unshare -rm refused ({probe.stderr.decode().strip()}): cannot mount a tiny tmpfs to fill")
    result = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_DISK, str(disk), size, *map(str, argv)],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    return disk, json.loads(result.stdout)


def test_a_full_disk_says_so_with_the_room_needed_and_keeps_whole_frames(kit, tmp_path):
    disk, state = run_on_tiny_disk(tmp_path, "1m", "render", kit["audio"], "-s", kit["style"], "-o",
                                   tmp_path / "disk" / "out", "--size", "256x144", "--format", "exr",
                                   "--exr-compression", "none", "-q")
    line = assert_one_line_error(state["code"], state["stderr"], f"no space left on the disk of {disk / 'out'}")
    assert "frames are missing, about" in line and "MB more is needed" in line
    assert state["keep"] == "mine"
    assert not [f for f in state["files"] if os.path.basename(f).startswith(".")]  # no temporary or lock file


def test_a_disk_full_before_the_first_frame_leaves_no_empty_folder(kit, tmp_path):
    disk, state = run_on_tiny_disk(tmp_path, "4k", "render", kit["audio"], "-s", kit["style"], "-o",
                                   tmp_path / "disk" / "new" / "out", *SMALL)
    assert_one_line_error(state["code"], state["stderr"], "no space left on the disk of")
    assert state["files"] == ["keep.txt"] and state["keep"] == "mine"
