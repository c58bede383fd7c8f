"""The command line starts light: --help and typos must not wait for torch, numba or OpenImageIO.

Each check runs in a fresh interpreter, because this test process has long imported everything.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numba", "librosa", "scipy", "OpenImageIO", "av", "matplotlib", "open_clip", "soundfile")


def python(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**environment, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def heavy_loaded_after(statement: str) -> list[str]:
    return json.loads(python(f"import contextlib, io, json, sys\n{statement}\n"
                             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"))


def test_building_the_parser_loads_no_heavy_library():
    assert heavy_loaded_after("import backend.cli; backend.cli.build_parser()") == []


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in COMMANDS])
def test_help_loads_no_heavy_library(argv):
    statement = ("from backend.cli import main\n"
                 f"with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit): main({argv!r})")
    assert heavy_loaded_after(statement) == []


def test_numba_caches_in_the_project_cache_folder_unless_told_otherwise(tmp_path):
    show = ("import contextlib, io, os\nfrom backend.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit): main(['--version'])\n"
            "print(os.environ['NUMBA_CACHE_DIR'])")
    assert python(show, AUDIO_CPPN_CACHE=str(tmp_path)) == str(tmp_path / "numba")
    assert python(show, AUDIO_CPPN_CACHE=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "mine")) == str(tmp_path / "mine")
