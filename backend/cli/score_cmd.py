"""``audio-cppn score``: how much a style looks like a prompt, by CLIP, across the music."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backend.cli.console import ProgressBar, device_type
from backend.model.device import spellings

EPILOG = """\
examples:
  audio-cppn score ink                                  # against the style's own prompt
  audio-cppn score ink --prompt "ink in water" --frames 32
  audio-cppn score ink --audio song.mp3 --json
  audio-cppn score ink --second-clip ViT-B-16/laion2b_s34b_b88k

The number is the mean cosine similarity between CLIP's embedding of each frame's centre
square and the prompt's; ~0.25 is a clear match for ViT-B-32. A second CLIP model is used
too when one is cached locally (or named with --second-clip), as an independent check.
"""


DEFAULT_MODEL, DEFAULT_TAG = "ViT-B-32", "laion2b_s34b_b79k"


def main_model(args, metadata: dict) -> tuple[str, str]:
    """--clip-model/--pretrained, filled in from the CLIP the style was trained with, else the defaults."""
    trained_with = metadata.get("clip_model")
    name = args.clip_model or trained_with or DEFAULT_MODEL
    tag = args.pretrained or (metadata.get("pretrained") if name == trained_with else None) or DEFAULT_TAG
    return name, tag


def _model_tag(text: str) -> tuple[str, str]:
    if text.startswith("local-dir:"):
        return text, ""
    name, sep, tag = text.partition("/")
    if not sep or not name or not tag:
        raise argparse.ArgumentTypeError(f"expected MODEL/TAG such as ViT-B-16/laion2b_s34b_b88k, got {text!r}")
    return name, tag


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="CLIP similarity of a style to a prompt, over frames across the music",
        description="Render frames of STYLE spread evenly over a track (the demo track by default) and report "
                    "their mean CLIP similarity to the prompt, with the main CLIP model and, when one is "
                    "cached locally, a second one. Frames use the default reactivity; CLIP sees each "
                    "frame's centre square (its standard centre crop), rendered at twice its input size "
                    "and downsampled.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("style", help="style name in the library, or a .safetensors path")
    parser.add_argument("--prompt", default=None,
                        help="text to score against, weights allowed (default: the style's own prompt)")
    parser.add_argument("--negative", default=None, help="also report similarity to this text")
    parser.add_argument("--clip-model", default=None,
                        help=f"open_clip architecture (default: the one the style was trained with, else {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", default=None,
                        help="weights: a cached tag, a file path or local-dir:FOLDER (default: the style's "
                             f"own, else {DEFAULT_TAG})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--second-clip", type=_model_tag, default=None, metavar="MODEL/TAG",
                       help="second model to score with, or local-dir:FOLDER "
                            "(default: the first cached of a few common ones)")
    group.add_argument("--no-second-clip", action="store_true", help="score with the main model only")
    parser.add_argument("--audio", default=None,
                        help="audio or features file whose frames are scored (default: the demo track)")
    parser.add_argument("--frames", type=int, default=16, help="frames spread over the track (default 16)")
    parser.add_argument("--device", type=device_type(), default="auto", metavar="DEVICE",
                        help=f"{spellings()} (default auto)")
    parser.add_argument("--styles-dir", type=Path, default=None,
                        help="style library folder (default: $AUDIO_CPPN_STYLES or the project's styles/)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.train.audio_rows import check_source, load_rows
    from backend.clip.models import find_cached_model, load_clip, resolve_weights
    from backend.model.device import resolve_device
    from backend.errors import InvalidInput
    from backend.train.score import score_style
    from backend.styles.library import load_style

    if args.frames < 1:
        raise InvalidInput(f"--frames must be >= 1, got {args.frames}")
    device = resolve_device(args.device)
    style = load_style(args.style, styles_dir=args.styles_dir, device=device)
    if args.prompt is not None and not args.prompt.strip():
        raise InvalidInput("--prompt is empty; expected the text to score against, e.g. --prompt \"ink in water\" "
                           "(or leave it out to use the style's own prompt)")
    prompt = args.prompt if args.prompt is not None else style.metadata.get("prompt", "")
    if not (prompt or "").strip():
        raise InvalidInput(f"style {style.name!r} has no prompt of its own; pass --prompt TEXT")
    models = [main_model(args, style.metadata)]
    resolve_weights(*models[0])  # a missing main model fails before any work
    second = None if args.no_second_clip else (args.second_clip or find_cached_model(exclude=models[0]))
    if second:
        models.append(second)
    rows = check_source(args.audio)  # a bad --audio file fails before CLIP loads
    bar = ProgressBar("frame", quiet=args.quiet or args.json)
    try:
        rows = rows or load_rows(args.audio, progress=bar)
        results = [score_style(style, prompt, clip=load_clip(name, tag, device=device), audio=rows,
                               negative=args.negative, n_frames=args.frames, progress=bar) for name, tag in models]
    finally:
        bar.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    print(f"style {style.name} vs {prompt!r} ({args.frames} frames of {results[0].audio})")
    for r in results:
        extra = f"  negative {r.negative_similarity:.4f}" if r.negative_similarity is not None else ""
        print(f"  {r.clip:<40} similarity {r.similarity:.4f}  (min {min(r.per_frame):.4f}, "
              f"max {max(r.per_frame):.4f}){extra}")
    if len(models) == 1 and not args.no_second_clip:
        print("  (no second CLIP model cached locally; name one with --second-clip MODEL/TAG)")
    return 0
