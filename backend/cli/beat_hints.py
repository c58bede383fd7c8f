"""--bpm, --tempo-range and --beats-file: the beat hints shared by ``features`` and ``render``.

They become AudioConfig fields (``bpm``, ``tempo_range``, ``beat_times``), so they reach the render
manifest and the service's requests like every other analysis setting.
"""

from __future__ import annotations

from pathlib import Path

from backend.errors import InvalidInput, NotFound


def add_beat_hint_arguments(parser) -> None:
    group = parser.add_argument_group("beat hints (no tracker is right on every song)")
    group.add_argument("--bpm", type=float, metavar="BPM",
                       help="fit the beat grid at this tempo, e.g. 87; the phase still comes from the audio")
    group.add_argument("--tempo-range", metavar="LOW-HIGH",
                       help="search the beat only in this BPM range, e.g. 70-140 (default: 60-200)")
    group.add_argument("--beats-file", metavar="TXT",
                       help="use these beats: one time in seconds per line (extra columns, e.g. a "
                            "Sonic Visualiser label, and # comments are ignored)")


def beat_hint_options(args) -> dict:
    """AudioConfig fields from the parsed hints (empty when none was given)."""
    options = {}
    if args.bpm is not None:
        options["bpm"] = args.bpm
    if args.tempo_range:
        options["tempo_range"] = parse_tempo_range(args.tempo_range)
    if args.beats_file:
        options["beat_times"] = read_beats_file(args.beats_file)
    return options


def parse_tempo_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        return float(low), float(high)
    except ValueError:
        raise InvalidInput(f"--tempo-range must look like 70-140, got {text!r}") from None


def read_beats_file(path: str | Path) -> tuple[float, ...]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"beats file {path} does not exist")
    times = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        field = line.split("#", 1)[0].replace(",", " ").split()
        if not field:
            continue
        try:
            times.append(float(field[0]))
        except ValueError:
            raise InvalidInput(f"{path} line {number}: expected a time in seconds, got {line.strip()!r}") from None
    return tuple(times)
