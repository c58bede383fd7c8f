"""Beat hints a user gives because no tracker is right on every song: a tempo range and a beats file.

Shared by the command line (``--tempo-range``, ``--beats-file``) and the service's requests, so both
read them the same way and say the same thing about a bad one.
"""

from __future__ import annotations

import os
from pathlib import Path

from backend.errors import InvalidInput
from backend.user_paths import check_path_names, open_regular

MAX_BEATS_FILE_BYTES = 4 * 1024 * 1024  # ~300 000 beat times: far past any song


def parse_tempo_range(text: str) -> tuple[float, float]:
    """``"70-140"`` -> (70.0, 140.0); the values themselves are checked by AudioConfig."""
    low, _, high = str(text).partition("-")
    try:
        return float(low), float(high)
    except ValueError:
        raise InvalidInput(f"tempo range must look like 70-140, got {text!r}") from None


def read_beats_file(path: str | os.PathLike) -> tuple[float, ...]:
    """Beat times in seconds, one per line (extra columns, e.g. a Sonic Visualiser label, and ``#``
    comments are ignored). A pipe or device is refused, never read."""
    path = Path(check_path_names(path, "beats file"))
    with open_regular(path, "beats file") as f:
        data = f.read(MAX_BEATS_FILE_BYTES + 1)
    if len(data) > MAX_BEATS_FILE_BYTES:
        raise InvalidInput(f"beats file {path} is over {MAX_BEATS_FILE_BYTES // 2**20} MB: not a list of beat times")
    times = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        field = line.split("#", 1)[0].replace(",", " ").split()
        if not field:
            continue
        try:
            times.append(float(field[0]))
        except ValueError:
            raise InvalidInput(f"{path} line {number}: expected a time in seconds, got {line.strip()!r}") from None
    return tuple(times)
