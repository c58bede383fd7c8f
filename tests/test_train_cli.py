import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
import torch

from backend.train.checkpoint import load_checkpoint
from backend.errors import Cancelled
from backend.model.config import CPPNConfig
from backend.styles.library import load_style
from backend.train.run import TrainConfig, train
from tests.helpers.cli import options_without_help


def cli(*args, env=None, timeout=180):
    # One torch thread: tiny tensors gain nothing from more, and a shared 2-core CI box stalls on them.
    env = {**(os.environ if env is None else env), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "backend", "train", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def tiny_flags(clip_dir, features, styles):
    return ["--clip-model", f"local-dir:{clip_dir}", "--features", str(features), "--styles-dir", str(styles),
            "--steps", "6", "--resolutions", "32", "--cutouts", "2", "--hidden", "16", "--depth", "2",
            "--eval-every", "3", "--device", "cpu", "--quiet"]


def assert_clean_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# Imported by Python at start-up when its folder is on PYTHONPATH: any attempt to reach a server
# (a name lookup or a connection) is written down and fails at once, instead of being timed.
NETWORK_TRIPWIRE = """
import os, socket

def _tripped(*args, **kwargs):
    with open(os.environ["NETWORK_ATTEMPTS"], "a") as log:
        log.write(repr(args[-1] if args else kwargs) + "\\n")
    raise OSError("network access in a test")

socket.getaddrinfo = _tripped
socket.socket.connect = _tripped
"""


def test_missing_cached_weights_fail_at_once_naming_file_cache_and_alternative(tmp_path):
    """No Hub round trip (the prototype retried for 46 s): the run never touches the network."""
    tripwire = tmp_path / "tripwire"
    tripwire.mkdir()
    (tripwire / "sitecustomize.py").write_text(NETWORK_TRIPWIRE)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # a real user's shell: Hub "online"
    env.update(HF_HUB_CACHE=str(tmp_path / "hub"), HOME=str(tmp_path), NETWORK_ATTEMPTS=str(tmp_path / "attempts"),
               PYTHONPATH=os.pathsep.join([str(tripwire), env.get("PYTHONPATH", "")]))
    result = cli("ink in water", "--name", "ink", "--styles-dir", str(tmp_path), env=env)
    assert_clean_error(result, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_pytorch_model.bin",
                       str(tmp_path / "hub"), "--pretrained PATH")
    assert not (tmp_path / "attempts").exists(), (tmp_path / "attempts").read_text()
    assert not list(tmp_path.glob("ink*"))


@pytest.mark.parametrize("args, fragments", [
    (["", "--name", "x"], ["prompt is empty"]),
    (["ink", "--name", "x", "--steps", "0"], ["steps must be an integer >= 1, got 0"]),
    (["ink", "--name", "x", "--clip-model", "ViT-Q-99"], ["unknown CLIP model 'ViT-Q-99'"]),
    (["ink", "--name", "x", "--pretrained", "no_such_tag"], ["unknown pretrained tag 'no_such_tag' for ViT-B-32"]),
    (["ink:heavy", "--name", "x"], ["weight 'heavy'"]),
])
def test_bad_requests_are_one_line_errors(args, fragments, tmp_path):
    assert_clean_error(cli(*args, "--styles-dir", str(tmp_path)), *fragments)


def test_unreadable_weights_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"<html>404 not found</html>")
    assert_clean_error(cli("ink", "--name", "x", "--pretrained", str(junk), "--styles-dir", str(tmp_path)),
                       str(junk), "not a PyTorch or safetensors weights file")
    assert_clean_error(cli("ink", "--name", "x", "--pretrained", str(tmp_path / "gone.safetensors")),
                       "CLIP weights file not found")


def test_train_command_writes_the_style_and_its_record(tiny_clip_dir, features_file, tmp_path):
    result = cli("ink in water:1, gold leaf:0.5", "--name", "cli-ink", "--negative", "text",
                 *tiny_flags(tiny_clip_dir, features_file, tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"style cli-ink: {tmp_path / 'cli-ink.safetensors'}" in result.stdout
    for suffix in (".safetensors", ".png", ".history.json", ".curve.png"):
        assert (tmp_path / f"cli-ink{suffix}").is_file(), suffix
    meta = load_style("cli-ink", styles_dir=tmp_path).metadata
    assert meta["prompts"][1] == {"text": "gold leaf", "weight": 0.5} and meta["negative"] == "text"
    assert meta["settings"]["steps"] == 6 and meta["settings"]["resolutions"] == [32]
    again = cli("ink", "--name", "cli-ink", *tiny_flags(tiny_clip_dir, features_file, tmp_path))
    assert_clean_error(again, "style 'cli-ink' already exists", "--overwrite")
    nothing = cli("--name", "cli-ink", "--resume", "--styles-dir", str(tmp_path))
    assert_clean_error(nothing, "no interrupted run of 'cli-ink' to resume")


def test_resume_continues_an_interrupted_run_from_the_command_line(tiny_clip_dir, features_file, tmp_path):
    config = TrainConfig(steps=8, resolutions=(32,), model=CPPNConfig(hidden=16, depth=2), cutouts=2, eval_every=4,
                         clip_model=f"local-dir:{tiny_clip_dir}", pretrained=None, features=str(features_file),
                         device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Cancelled):
            train("ink in water", name="half", config=config, styles_dir=tmp_path,
                  progress=lambda e: not (e.stage == "train" and e.done == 5))
    finally:
        torch.set_num_threads(threads)
    changed = cli("--name", "half", "--resume", "--steps", "20", "--styles-dir", str(tmp_path))
    assert_clean_error(changed, "cannot resume with different settings: steps (8 -> 20)")
    resumed = cli("--name", "half", "--resume", "--styles-dir", str(tmp_path), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    style = load_style("half", styles_dir=tmp_path)
    assert style.metadata["prompt"] == "ink in water" and style.metadata["steps"] == 8
    assert not (tmp_path / ".checkpoints" / "half.ckpt.safetensors").exists()


def test_help_teaches_every_option_with_examples():
    out = subprocess.run([sys.executable, "-m", "backend", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert not options_without_help("train")
    assert "examples:" in out.stdout and "local-dir:FOLDER" in out.stdout


# A run long enough to interrupt mid-way (seconds, not the tiny model's 0.4 s for 60 steps), over two resolutions.
LONG_STEPS = 300
LONG = ["--steps", str(LONG_STEPS), "--resolutions", "32,48", "--cutouts", "2", "--hidden", "16", "--depth", "2",
        "--eval-every", "5", "--device", "cpu"]


def long_flags(clip_dir, features, styles, *extra):
    return ["ink in water", "--name", "long", "--clip-model", f"local-dir:{clip_dir}", "--features", str(features),
            "--styles-dir", str(styles), *LONG, *extra]


def start(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "backend", "train", *args], env=env, **kwargs)


def read_until_step(terminal: int, step: int, timeout: float = 120.0) -> bytes:
    """Read the progress bar from the ``terminal`` (a pty's reading end) until it shows ``step`` or later."""
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.5)
        if ready:
            chunk = os.read(terminal, 65536)
            assert chunk, f"train ended before step {step}: {seen.decode(errors='replace')}"
            seen += chunk
            done = re.findall(rb"train:[^|]*\|[^|]*\| *(\d+)/%d" % LONG_STEPS, seen)
            if done and int(done[-1]) >= step:
                return seen
    raise AssertionError(f"no step {step} within {timeout} s: {seen.decode(errors='replace')}")


def read_to_end(terminal: int) -> bytes:
    """Everything left on a pty once the process has closed it."""
    seen = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the other end is closed
            return seen
        if not chunk:
            return seen
        seen += chunk


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_clip_dir, features_file):
    styles = tmp_path_factory.mktemp("whole")
    done = cli(*long_flags(tiny_clip_dir, features_file, styles), "--quiet")
    assert done.returncode == 0, done.stderr
    return load_style("long", styles_dir=styles).model.state_dict()


def assert_same_weights(styles, reference):
    weights = load_style("long", styles_dir=styles).model.state_dict()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


def test_ctrl_c_saves_the_last_finished_step_and_resume_completes_the_same_run(tiny_clip_dir, features_file,
                                                                               tmp_path, uninterrupted):
    # stderr on a pseudo-terminal, as for a person at the keyboard: the bar redraws every step
    terminal, screen = pty.openpty()
    fcntl.ioctl(screen, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0 columns wide
    proc = start(*long_flags(tiny_clip_dir, features_file, tmp_path), stdout=subprocess.PIPE, stderr=screen)
    os.close(screen)
    try:
        read_until_step(terminal, 3)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        err = read_to_end(terminal)
    finally:
        proc.kill()
        os.close(terminal)
    err = err.decode(errors="replace").replace("\r\n", "\n")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    checkpoint = tmp_path / ".checkpoints" / "long.ckpt.safetensors"
    step = load_checkpoint(checkpoint).state["step"]
    assert 3 <= step < LONG_STEPS and step % 100  # the step finished when Ctrl-C came, not a periodic one
    assert f"checkpoint saved at step {step}" in err
    assert f"audio-cppn train --name long --resume --styles-dir {tmp_path}" in err
    assert not (tmp_path / "long.safetensors").exists()
    resumed = cli("--name", "long", "--resume", "--styles-dir", str(tmp_path), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path, uninterrupted)


def test_a_killed_run_resumes_from_its_periodic_checkpoint(tiny_clip_dir, features_file, tmp_path, uninterrupted):
    checkpoint = tmp_path / ".checkpoints" / "long.ckpt.safetensors"
    proc = start(*long_flags(tiny_clip_dir, features_file, tmp_path, "--checkpoint-every", "4"),
                 "--quiet", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # no chance to save anything: only the periodic checkpoint is left
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    step = load_checkpoint(checkpoint).state["step"]
    assert step % 4 == 0 and 4 <= step < LONG_STEPS
    assert not (tmp_path / "long.safetensors").exists()
    resumed = cli("--name", "long", "--resume", "--styles-dir", str(tmp_path), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path, uninterrupted)
