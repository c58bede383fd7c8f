"""Where the project keeps its files (style library, caches), and the one way we hash a file.

In a checkout (``make`` installs the package editable) everything lives in the project folder:
``styles/`` and the ignored ``.cache/``. An installed package has no project folder, so it uses
the user's data and cache folders instead (``$XDG_DATA_HOME/audio-cppn/styles``,
``$XDG_CACHE_HOME/audio-cppn``). ``$AUDIO_CPPN_STYLES`` and ``$AUDIO_CPPN_CACHE`` override both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STYLES_ENV = "AUDIO_CPPN_STYLES"
CACHE_ENV = "AUDIO_CPPN_CACHE"
DEFAULT_STYLE = "aurora"  # a bundled procedural style; what `demo` and new renders use


def in_checkout() -> bool:
    """True when running from the project folder rather than an installed package."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "styles").is_dir()


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback) / "audio-cppn"


def default_styles_dir() -> Path:
    """The style library: ``$AUDIO_CPPN_STYLES``, else the project's ``styles/``, else the user's data folder."""
    env = os.environ.get(STYLES_ENV)
    if env:
        return Path(env)
    return PROJECT_ROOT / "styles" if in_checkout() else _xdg("XDG_DATA_HOME", ".local/share") / "styles"


def bundled_styles_dir() -> Path | None:
    """The styles shipped with the project (in a checkout), or None in an installed package."""
    folder = PROJECT_ROOT / "styles"
    return folder if in_checkout() else None


def cache_dir(name: str) -> Path:
    """A cache sub-folder (``demo``, ``features``, ...), not created: ``$AUDIO_CPPN_CACHE`` or the defaults."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env) if env else (PROJECT_ROOT / ".cache" if in_checkout() else _xdg("XDG_CACHE_HOME", ".cache"))
    return root / name


def file_sha256(path: str | os.PathLike, *, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks (audio files can be hours long)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


FINGERPRINT_BLOCK = 1 << 20  # bytes read at each end
FINGERPRINT_SAMPLES = 16  # 64 KiB blocks spread over the middle


def file_fingerprint(path: str | os.PathLike) -> str:
    """A quick identity of a file: sha256 of its size, first and last MiB and 16 blocks of 64 KiB
    spread between them. About 3 MB read whatever the size, so a preview of a two-hour track does
    not wait for the whole file; any change of length, and any edit touching a sampled block (a
    re-export, another mix, new tags) changes it. Not a content hash: an in-place edit of a few
    bytes elsewhere goes unnoticed."""
    from backend.user_paths import open_regular

    digest = hashlib.sha256()
    with open_regular(path, "file") as f:
        size = f.seek(0, os.SEEK_END)
        digest.update(f"size={size};".encode())
        spots = [0, max(0, size - FINGERPRINT_BLOCK)]
        middle = size - 2 * FINGERPRINT_BLOCK
        if middle > 0:
            spots[1:1] = [FINGERPRINT_BLOCK + middle * i // FINGERPRINT_SAMPLES for i in range(FINGERPRINT_SAMPLES)]
        for i, spot in enumerate(spots):
            f.seek(spot)
            digest.update(f.read(FINGERPRINT_BLOCK if i in (0, len(spots) - 1) else 1 << 16))
    return digest.hexdigest()
