"""``audio-cppn demo``: the bundled track with the default style, as EXR frames and an MP4 (``make demo``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli.render_cmd import StageBars, add_device_option, summary_line
from backend.errors import Conflict
from backend.paths import DEFAULT_STYLE

EPILOG = """\
examples:
  audio-cppn demo                      # out/demo/frame_000001.exr ... and out/demo.mp4
  audio-cppn demo --out /tmp/try --size 720p --style ember

Rerunning resumes: frames already in out/demo/ are kept (the MP4 is always re-encoded from them);
if the settings changed since (a new version, another --style or --size), the demo is re-rendered.
Load the frames in Blender as an image sequence starting at frame 1, with the track as a sound strip."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="render the bundled demo track (what 'make demo' runs)",
        description="Render the bundled demo track with the default style at 360p, 30 fps: EXR frames into "
                    "OUT/demo/ and an H.264 + AAC video OUT/demo.mp4, from one compute pass. Takes under three "
                    "minutes on a two-core CPU.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for demo/ and demo.mp4 (default: out)")
    parser.add_argument("-s", "--style", default=DEFAULT_STYLE, help=f"style name or file (default: {DEFAULT_STYLE})")
    parser.add_argument("--size", default="360p", help="frame size: WIDTHxHEIGHT or 360p..4k (default: 360p)")
    add_device_option(parser)
    parser.add_argument("--overwrite", action="store_true", help="re-render every frame instead of resuming")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.audio.demo_track import demo_track_path
    from backend.render.folder_lock import locked_by
    from backend.render.job import RenderConfig, parse_size, render

    width, height = parse_size(args.size)
    config = RenderConfig(width=width, height=height, device=args.device, overwrite=args.overwrite)
    bars = StageBars(quiet=args.quiet)
    try:
        try:
            result = render(demo_track_path(), args.style, args.out / "demo", config=config,
                            video=args.out / "demo.mp4", progress=bars)
        except Conflict as exc:  # the demo owns out/demo: an older demo's frames are simply replaced
            if any(locked_by(p) is not None for p in (args.out / "demo", args.out / "demo.mp4")):
                raise  # ... unless another process is writing them right now
            bars.close()
            print(f"note: {exc.message}; re-rendering the demo", file=sys.stderr)
            config.overwrite = True
            result = render(demo_track_path(), args.style, args.out / "demo", config=config,
                            video=args.out / "demo.mp4", progress=bars)
    finally:
        bars.close()
    print(summary_line(result))
    return 0
