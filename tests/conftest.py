"""Shared test set-up: offline model hubs, a persistent numba cache, a headless plot backend."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# absolute, because some tests run the CLI in another working folder
os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ.get("NUMBA_CACHE_DIR", ROOT / ".cache" / "numba")).resolve())
os.environ.setdefault("MPLBACKEND", "Agg")
