"""--bpm, --tempo-range and --beats-file: the beat hints shared by ``features`` and ``render``.

They become AudioConfig fields (``bpm``, ``tempo_range``, ``beat_times``), so they reach the render
manifest like every other analysis setting; the files are read by :mod:`backend.audio.hints`, which
the service's requests use too.
"""

from __future__ import annotations

from backend.audio.hints import parse_tempo_range, read_beats_file


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
