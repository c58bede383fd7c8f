"""``audio-cppn render``: a track and a style to an EXR/PNG sequence or an MP4."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.cli.beat_hints import add_beat_hint_arguments, beat_hint_options
from backend.cli.console import device_type
from backend.errors import InvalidInput
from backend.audio.names import FEATURE_NAMES
from backend.writers.image import EXR_COMPRESSIONS
from backend.paths import DEFAULT_STYLE, STYLES_ENV
from backend.model.device import RENDER_KINDS
from backend.model.reactivity import Reactivity

SIZE_HELP = "WIDTHxHEIGHT (e.g. 1280x720) or a preset: 360p, 480p, 720p, 1080p, 1440p, 4k"
EPILOG = f"""\
examples:
  audio-cppn render song.wav --style aurora -o out/song/            # frame_000001.exr ... at 720p, 30 fps
  audio-cppn render song.wav -o out/song.mp4 --size 1080p           # H.264 + AAC video
  audio-cppn render song.flac -o out/png/ --format png --png-depth 16 --fps 29.97
  audio-cppn render song.wav -o out/song/ --frames 1201-1800        # one shard of a farm render
  audio-cppn render song.wav -o out/calm/ --reactivity 0.5 --gain bass=2 --flash 0

Output names: <prefix><frame:06d>.<ext>, the number being the Blender scene frame (--frame-start
is the frame showing the audio's first instant). A folder gets a manifest.json; rerunning the same
command resumes, skipping frames already written; changed settings are refused unless --overwrite.
EXR frames are half-float scene-linear Rec.709 RGBA (the display colour through the inverse sRGB
curve), so Blender's Standard view shows the same colours as the sRGB PNGs.
Features: {", ".join(FEATURE_NAMES)}."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="render a track with a style to EXR/PNG frames or an MP4",
        description="Render AUDIO with a style, frame by frame, into a folder of EXR/PNG frames for "
                    "Blender or into an MP4 (H.264 + the source audio as AAC). Frames are pure functions "
                    "of their inputs: any frame range gives the same bytes as in a full render.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", type=Path, help="the track: wav, flac, ogg, mp3 or a video with an audio track")
    parser.add_argument("-s", "--style", default=DEFAULT_STYLE,
                        help=f"style name in the library or path to a .safetensors style (default: {DEFAULT_STYLE})")
    parser.add_argument("-o", "--output", required=True,  # a str: Path("") would quietly mean "here"
                        help="a folder for the image sequence, or a file ending in .mp4")
    add_picture_options(parser)
    parser.add_argument("--format", choices=("exr", "png"), default="exr",
                        help="frame file format: exr (half-float, scene-linear) or png (sRGB) (default: exr)")
    parser.add_argument("--png-depth", type=int, choices=(8, 16), default=8, help="PNG bits per channel (default: 8)")
    parser.add_argument("--exr-compression", choices=EXR_COMPRESSIONS, default="zip",
                        help="EXR compression; dwaa is lossy and smallest (default: zip)")
    parser.add_argument("--alpha", action="store_true",
                        help="write a real alpha channel: the style's 4th channel, or for RGB styles the luma "
                             "of the colour (black = transparent); premultiplied in EXR, straight in PNG")
    parser.add_argument("--prefix", default="frame_", help="file name before the frame number (default: frame_)")
    parser.add_argument("--frames", metavar="A-B",
                        help="render only scene frames A to B (inclusive), e.g. 1201-1800; default: the whole track")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="render only the first SECONDS of the track")
    parser.add_argument("--video", type=Path, metavar="MP4",
                        help="with a folder output, also encode this MP4 from the same frames (one compute pass)")
    parser.add_argument("--overwrite", action="store_true",
                        help="re-render existing frames, and replace a folder or MP4 made with other settings")
    parser.add_argument("--verify", action="store_true",
                        help="before skipping frames already on disk, decode each one whole (default: a cheap "
                             "check of each file's header and length)")
    parser.add_argument("--styles-dir", type=Path, help=f"style library folder (default: ${STYLES_ENV} or styles/)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_picture_options(parser) -> None:
    """Size, timing, device and reactivity: shared by ``render`` and ``demo``."""
    parser.add_argument("--size", default="720p", help=f"{SIZE_HELP} (default: 720p)")
    parser.add_argument("--fps", default="30", help="frames per second: 24, 25, 30, 29.97 (= 30000/1001 exactly), "
                                                    "60, or a fraction like 24000/1001 (default: 30)")
    parser.add_argument("--frame-start", type=int, default=1,
                        help="scene frame number of the audio's first instant (default: 1, Blender's default)")
    parser.add_argument("--seed", type=int, default=0,
                        help="variation seed: shifts the style's slow drift to another point of its cycle; "
                             "0 = none (default: 0)")
    add_device_option(parser)
    group = parser.add_argument_group("reactivity (how the music moves the picture)")
    defaults = Reactivity()
    group.add_argument("--reactivity", type=float, default=defaults.amount, metavar="AMOUNT",
                       help=f"global multiplier of every audio effect; 0 ignores the music "
                            f"(default: {defaults.amount})")
    group.add_argument("--morph", type=float, default=defaults.morph,
                       help=f"how far the features push the pattern through the network (default: {defaults.morph})")
    group.add_argument("--swell", type=float, default=defaults.swell,
                       help=f"magnification per unit of bass (default: {defaults.swell})")
    group.add_argument("--pulse", type=float, default=defaults.pulse,
                       help=f"outward radial push per unit of beat pulse, radians (default: {defaults.pulse})")
    group.add_argument("--flash", type=float, default=defaults.flash,
                       help=f"blend towards white per unit of onset (default: {defaults.flash})")
    group.add_argument("--gain", action="append", default=[], metavar="FEATURE=X",
                       help="per-feature multiplier, repeatable: --gain bass=1.5 --gain onset=0")
    group.add_argument("--smoothing", action="append", default=[], metavar="FEATURE=ATTACK,RELEASE",
                       help="attack and release of a feature's envelope in ms, repeatable: --smoothing onset=0,60")
    add_beat_hint_arguments(parser)


def add_device_option(parser) -> None:
    parser.add_argument("--device", type=device_type(RENDER_KINDS), default="auto", metavar="DEVICE",
                        help="cpu (FP32), cuda or cuda:N for GPU N (FP16); auto picks cuda when a GPU is usable "
                             "(default: auto)")


def parse_assignments(items: list[str], what: str, count: int) -> dict[str, tuple[float, ...]]:
    """``["bass=1.5"]`` -> ``{"bass": (1.5,)}``; clear errors for anything else."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            numbers = tuple(float(v) for v in value.split(","))
        except ValueError:
            numbers = ()
        if not sep or len(numbers) != count:
            shape = "FEATURE=X" if count == 1 else "FEATURE=ATTACK,RELEASE"
            raise InvalidInput(f"{what} must look like {shape}, got {item!r}")
        out[name.strip()] = numbers
    return out


def reactivity_from_args(args) -> Reactivity:
    gains = {k: v[0] for k, v in parse_assignments(args.gain, "--gain", 1).items()}
    return Reactivity(amount=args.reactivity, morph=args.morph, swell=args.swell, pulse=args.pulse,
                      flash=args.flash, gains=gains)


def audio_options_from_args(args) -> dict:
    options = beat_hint_options(args)
    if not args.smoothing:
        return options
    from backend.audio.features import default_smoothing

    table = default_smoothing()
    table.update(parse_assignments(args.smoothing, "--smoothing", 2))
    return {"smoothing": table, **options}


def config_from_args(args):
    from backend.render.job import RenderConfig, parse_frame_range, parse_size

    width, height = parse_size(args.size)
    return RenderConfig(
        width=width, height=height, fps=args.fps, frame_start=args.frame_start,
        frames=parse_frame_range(args.frames) if args.frames is not None else None, duration=args.duration,
        format=args.format, png_depth=args.png_depth, exr_compression=args.exr_compression, alpha=args.alpha,
        prefix=args.prefix, seed=args.seed, device=args.device, reactivity=reactivity_from_args(args),
        audio_options=audio_options_from_args(args), overwrite=args.overwrite,
        verify=getattr(args, "verify", False))


def summary_line(result) -> str:
    """The closing line: frames, time and realtime factor."""
    rate = result.frames_rendered / result.render_s if result.render_s > 0 else 0.0
    where = str(result.output) + (f" and {result.video}" if result.video and result.video != result.output else "")
    return (f"rendered {result.frames_rendered} frames (skipped {result.frames_skipped} already done) "
            f"in {result.elapsed_s:.1f} s on {result.device} ({result.precision}): {rate:.2f} frames/s, "
            f"{result.realtime_factor:.2f}x realtime -> {where}")


class StageBars:
    """One progress bar per stage, each counting its own unit (seconds of audio, frames)."""

    UNITS = {"analyse": "s", "render": "frame"}

    def __init__(self, *, quiet: bool = False):
        from backend.cli.console import ProgressBar

        self._bars = {stage: ProgressBar(unit, quiet=quiet, postfix_keys=("frame",) if unit == "frame" else ())
                      for stage, unit in self.UNITS.items()}
        self._current = None

    def __call__(self, event) -> bool:
        bar = self._bars.get(event.stage, self._bars["render"])
        if bar is not self._current and self._current is not None:
            self._current.close()  # finish the previous stage's line before the next starts
        self._current = bar
        return bar(event)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def run(args) -> int:
    from backend.render.job import render

    config = config_from_args(args)
    bars = StageBars(quiet=args.quiet)
    try:
        result = render(args.audio, args.style, args.output, config=config, video=args.video,
                        styles_dir=args.styles_dir, progress=bars)
    finally:
        bars.close()
    print(summary_line(result))
    return 0
