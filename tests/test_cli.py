"""The command line as a whole: every mistake is one line and exit code 2; piping into head is fine."""

import subprocess
import sys

import pytest


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "backend", *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("args,expected", [
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["render", "x.wav", "-o", "out", "--format", "jpg"], "argument --format: invalid choice: 'jpg'"),
    (["render", "x.wav"], "the following arguments are required: -o/--output"),
    (["features", "x.wav", "--fps"], "argument --fps: expected one argument"),
])
def test_argument_mistakes_are_one_line_with_a_pointer_to_help(args, expected):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr and "--help" in result.stderr and "Traceback" not in result.stderr


def test_an_error_and_its_fix_share_one_line(tmp_path):
    result = run("render", "x.wav", "-o", str(tmp_path / "o"), "--style", "nosuchstyle")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no style named 'nosuchstyle'" in result.stderr and "(fix: run 'audio-cppn styles'" in result.stderr


def test_piping_into_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    from backend.model.cppn import CPPN, CPPNConfig
    from backend.styles.library import save_style

    model = CPPN(CPPNConfig(hidden=4, depth=1))
    for i in range(300):  # more JSON than a pipe buffers, so the writer really meets the closed pipe
        save_style(model, tmp_path / f"s{i:03d}.safetensors", name=f"s{i:03d}", kind="trained",
                   metadata={"prompt": "a long prompt " * 8})
    shell = (f"{sys.executable} -m backend styles --json --styles-dir {tmp_path} | head -c 10 > /dev/null; "
             "echo ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert result.stdout.strip() == "0" and "Traceback" not in result.stderr


def test_no_command_prints_help_and_fails():
    result = run()
    assert result.returncode == 2 and "COMMAND" in result.stdout
