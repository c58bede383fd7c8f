"""``audio-cppn features``: analyse a track into per-frame features, save them, plot them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from backend.atomic import write_bytes
from backend.cli.beat_hints import add_beat_hint_arguments, beat_hint_options
from backend.cli.console import ProgressBar
from backend.errors import InvalidInput
from backend.audio.files import check_output_path, features_bytes
from backend.audio.names import CHROMA
from backend.timebase import fps_label

EPILOG = """\
frames:
  Frame N (a Blender scene frame) shows the instant t = (N - frame_start) / fps. A track of
  d seconds gets ceil(d * fps) frames, so the video is never shorter than the sound. Each frame
  summarises the audio within half a frame of its instant; onset takes the peak there, so a
  10 ms hit is never lost between frames.

features (all in [0, 1], normalised per track):
  sub bass low_mid high_mid treble  band energies (20-60, 60-250, 250-1k, 1k-4k, 4k-16k Hz)
  rms onset                         loudness; spectral flux peak (hits)
  beat_pulse beat_sin beat_cos      1 on each beat, decaying; position within the beat
  tempo                             local tempo, 60..180 BPM mapped to 0..1
  chroma_c .. chroma_b centroid     pitch classes (harmony); brightness

examples:
  audio-cppn features song.flac --fps 29.97 -o song.npz --plot song.png
  audio-cppn features clip.mp4 --fps 24 --frame-start 1001 -o clip.csv
  audio-cppn features --demo --plot demo.png
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "features", help="analyse audio into per-frame features (bands, onsets, beats, chroma)",
        description="Analyse an audio file (wav, flac, ogg, mp3, or the audio track of a video) into one "
                    "row of 29 features per video frame, normalised to [0, 1] and smoothed. Without -o "
                    "or --plot it prints a summary of every feature.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="?", metavar="AUDIO", help="the audio or video file to analyse")
    parser.add_argument("--demo", action="store_true",
                        help="analyse the bundled 17 s demo track instead (synthesised on first use)")
    parser.add_argument("--fps", default="30",
                        help="video frame rate: 24, 25, 30, 60, 29.97 (exactly 30000/1001) or a fraction "
                             "such as 24000/1001 (default: 30)")
    parser.add_argument("--frame-start", type=int, default=1, metavar="N",
                        help="scene frame number that shows the start of the audio (default: 1, as in Blender)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the features: .npz (arrays), .csv (a table) or .json")
    parser.add_argument("--plot", metavar="PNG", help="draw every feature over time, with beat markers, into a PNG")
    parser.add_argument("--causal", action="store_true",
                        help="smooth like a live visualiser, reacting just after each event; the default "
                             "(zero-phase) lets a reaction peak exactly on the beat")
    add_beat_hint_arguments(parser)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: only when stderr is a terminal)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.audio.features import AudioConfig, analyze  # numba and scipy: only when the command runs

    if args.demo == bool(args.audio):
        raise InvalidInput("give one AUDIO file to analyse, or --demo for the bundled demo track")
    config = AudioConfig(fps=args.fps, frame_start=args.frame_start, zero_phase=not args.causal,
                         **beat_hint_options(args))
    if args.output is not None:
        check_output_path(args.output)  # before the analysis, not after it
    if args.plot is not None:
        check_output_path(args.plot, (".png",))
    if args.demo:
        from backend.audio.demo_track import demo_track_path

        path = demo_track_path()
    else:
        path = args.audio
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar(unit="s", quiet=not show)
    try:
        features = analyze(path, config=config, progress=bar)
    finally:
        bar.close()

    last = features.frame_start + features.n_frames - 1
    print(f"{path}: {features.duration:.2f} s at {features.sample_rate} Hz -> {features.n_frames} frames "
          f"({features.frame_start}-{last}) at {fps_label(features.fps)} fps")
    if features.tempo > 0:
        first = features.beat_times[0] if len(features.beat_times) else 0.0
        print(f"tempo {features.tempo:.1f} BPM, {len(features.beat_times)} beats, first at {first:.2f} s "
              f"(frame {features.frame_start + round(first * features.fps)})")
    else:
        print("no beats found")
    # Both files are made in memory first: a failure writes neither, rather than one of two.
    outputs = []
    if args.output is not None:
        outputs.append((args.output, features_bytes(features, Path(args.output).suffix)))
    if args.plot is not None:
        from backend.audio.plot import plot_png

        outputs.append((args.plot, plot_png(features, title=str(path))))
    for target, data in outputs:
        print(f"wrote {write_bytes(target, data)}")
    if not outputs:
        _print_summary(features)
    return 0


def _print_summary(features) -> None:
    """Mean and peak of each normalised feature, and the span of its raw values."""
    print(f"\n{'feature':<10} {'mean':>5} {'max':>5}   raw (5th..95th percentile)")
    units = {"tempo": "BPM", "centroid": "Hz", "onset": "flux", "beat_pulse": "", "beat_sin": "", "beat_cos": ""}
    for i, name in enumerate(features.names):
        values, raw = features.values[:, i], features.raw[:, i]
        unit = "" if name in CHROMA else units.get(name, "dB")
        lo, hi = (float(x) for x in np.percentile(raw, [5, 95]))
        print(f"{name:<10} {values.mean():5.2f} {values.max():5.2f}   {lo:8.3g} .. {hi:<8.3g} {unit}")
