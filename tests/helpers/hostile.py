"""Helpers for the hostile-input tests: run the CLI as a user would, and prove nothing was touched.

``cli`` runs ``audio-cppn`` in this process (fast; an uncaught exception fails the test as a
traceback would); ``cli_process`` runs it as a real process (for locks, signals, pipes and
anything that could hang, always with a timeout). ``snapshot`` records every file under a
folder so a test can assert each pre-existing file is byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(capsys, *argv) -> tuple[int, str, str]:
    from backend.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's errors end here (console.Parser prints the line first)
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_process(*argv, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *map(str, argv)], capture_output=True, text=True,
                          env=ENV, cwd=kwargs.pop("cwd", ROOT), timeout=timeout, **kwargs)


def start_cli(*argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "backend", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)


def assert_one_line_error(code: int, stderr: str, message: str, *, exit_code: int = 2) -> str:
    """Exit code, ``error: ...`` containing ``message`` on one line, and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == exit_code, (code, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0], (message, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of a regular file, or its kind (folder, fifo, link ...).

    A file that vanishes while we look (a live render's temporary file, renamed into place) is left
    out: a pre-existing file that went is still caught, by its absence in the later snapshot."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(folder))
            try:
                mode = path.lstat().st_mode
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else None
            except FileNotFoundError:
                continue
            if digest is not None:
                state[key] = digest
            else:
                state[key] = "folder" if stat.S_ISDIR(mode) else "fifo" if stat.S_ISFIFO(mode) else "other"
    return state


def assert_untouched(before: dict[str, str], folder: Path, *, new_allowed: bool = False) -> None:
    after = snapshot(folder)
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, f"pre-existing files changed or went: {sorted(changed)}"
    if not new_allowed:
        assert set(after) == set(before), f"left behind: {sorted(set(after) - set(before))}"
