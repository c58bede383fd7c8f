"""Shared test set-up: offline model hubs, a persistent numba cache, a headless plot backend, and
the fixtures many test files use (helpers that are plain functions live in ``tests/helpers/``)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# absolute, because some tests run the CLI in another working folder
os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ.get("NUMBA_CACHE_DIR", ROOT / ".cache" / "numba")).resolve())
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A ``local-dir:`` folder holding the tiny open_clip model (see tests/helpers/tiny_clip.py)."""
    from tests.helpers.tiny_clip import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from backend.clip.models import load_clip

    return load_clip(f"local-dir:{tiny_clip_dir}", None)


@pytest.fixture(scope="session")
def features_file(tmp_path_factory) -> Path:
    """A .npz of music-like feature rows (a 120 BPM beat, onsets on beats, slow band swells)."""
    from tests.helpers.tiny_clip import write_features

    return write_features(tmp_path_factory.mktemp("features") / "music.npz")


@pytest.fixture
def one_torch_thread():
    """Tiny tensors run as fast on one thread, and one thread cannot stall busy-waiting for a
    second one on a shared 2-core CI machine (measured: 4.5 s instead of 21 s under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
