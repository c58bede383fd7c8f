"""``audio-cppn train``: train a style from a text prompt with CLIP guidance."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from backend.cli.console import ProgressBar, device_type
from backend.model.device import spellings
from backend.train.config import TrainConfig

EPILOG = """\
examples:
  audio-cppn train "ink in water" --name ink
  audio-cppn train "ink in water:1, gold leaf:0.5" --name gilded --negative "text, watermark"
  audio-cppn train "aurora over a frozen sea" --name aurora2 --steps 400 --resolutions 256
  audio-cppn train "neon rain" --name neon --pretrained ~/models/open_clip_model.safetensors
  audio-cppn train --name neon --resume          # continue an interrupted run

Prompts: plain text is one prompt; "A:1, B:0.5" weighs several (weights > 0).
Weights never download: a pretrained tag must already be in the Hugging Face cache
(~/.cache/huggingface/hub), else pass --pretrained PATH or local-dir:FOLDER.
Writes NAME.safetensors, NAME.png (preview), NAME.history.json and NAME.curve.png
into the style library. Ctrl-C stops after the current step and saves a checkpoint
(a second Ctrl-C aborts at once); continue with --resume, also after a crash (a
checkpoint is kept every --checkpoint-every steps).
"""

# option name -> flat training setting (TrainConfig.from_dict); each defaults to None so --resume knows
# what was given
CONFIG_OPTIONS = ("steps", "resolutions", "hidden", "depth", "first_omega", "time_omega", "time_periods",
                  "clip_model", "pretrained", "cutouts", "lr", "seed", "device", "negative", "negative_weight",
                  "features", "checkpoint_every", "eval_every")


def _numbers(kind, example: str):
    """An argparse type for comma-separated numbers such as ``256,512``."""
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers like {example}, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one number, e.g. {example}")
        return values

    return parse


def _listed(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def add_parser(subparsers) -> None:
    defaults = TrainConfig()
    net = defaults.model
    parser = subparsers.add_parser(
        "train", help="train a style from a text prompt (CLIP guidance)",
        description="Train a new style: a CPPN optimised so that its frames, at any time and under "
                    "realistic music, look like PROMPT to CLIP. Random cutouts of the render canvas are "
                    "scored in batches, coarse resolutions first. Progress shows step, similarity "
                    "(cosine, higher is closer) and steps/s.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="?", default=None,
                        help='what to see, e.g. "ink in water" or "ink in water:1, gold leaf:0.5" '
                             "(optional with --resume)")
    parser.add_argument("--name", required=True, help="style name: the file NAME.safetensors in the library")
    parser.add_argument("--negative", default=None, help='things to steer away from, same syntax (e.g. "text, blur")')
    parser.add_argument("--negative-weight", type=float, default=None,
                        help=f"how hard to avoid the negative prompt (default {defaults.negative_weight:g})")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"optimisation steps in all (default {defaults.steps})")
    parser.add_argument("--resolutions", type=_numbers(int, "256,512"), default=None,
                        help=f"cutout sizes in pixels, coarse to fine, steps split evenly "
                             f"(default {_listed(defaults.resolutions)})")
    parser.add_argument("--clip-model", default=None, help=f"open_clip architecture (default {defaults.clip_model})")
    parser.add_argument("--pretrained", default=None,
                        help=f"weights: a tag already in the local cache (default {defaults.pretrained}), a weights "
                             "file path, local-dir:FOLDER (config + weights), or 'random' for benchmarks")
    parser.add_argument("--cutouts", type=int, default=None,
                        help=f"views per step, one CLIP batch (default {defaults.cutouts})")
    parser.add_argument("--lr", type=float, default=None, help=f"peak learning rate of Adam (default {defaults.lr:g})")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"seed of the network and every random draw (default {defaults.seed})")
    parser.add_argument("--device", type=device_type(), default=None, metavar="DEVICE",
                        help=f"{spellings()}; auto is CUDA when present (default {defaults.device})")
    parser.add_argument("--features", default=None,
                        help="music the style must hold up under: a features file (.npz/.json from "
                             "'audio-cppn features', or a (frames, 24) .npy array) or an audio file "
                             "(default: the demo track)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help=f"steps between checkpoints for --resume (default {defaults.checkpoint_every})")
    parser.add_argument("--eval-every", type=int, default=None,
                        help=f"steps between evaluations that choose the best weights (default {defaults.eval_every})")
    network = parser.add_argument_group("the network (a style's architecture)")
    network.add_argument("--hidden", type=int, default=None, help=f"sine units per layer (default {net.hidden})")
    network.add_argument("--depth", type=int, default=None, help=f"sine layers (default {net.depth})")
    network.add_argument("--first-omega", type=float, default=None, metavar="W",
                         help=f"spatial frequency of the first layer, radians per unit: higher gives finer "
                              f"patterns (default {net.first_omega:g})")
    network.add_argument("--time-omega", type=float, default=None, metavar="W",
                         help=f"how far the slow time drift moves the pattern (default {net.time_omega:g})")
    network.add_argument("--time-periods", type=_numbers(float, "29,71"), default=None, metavar="SECONDS",
                         help=f"seconds per cycle of each slow drift, comma-separated "
                              f"(default {_listed(net.time_periods)})")
    parser.add_argument("--resume", action="store_true", help="continue NAME's interrupted run from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing style or interrupted run")
    parser.add_argument("--styles-dir", type=Path, default=None,
                        help="style library folder (default: $AUDIO_CPPN_STYLES or the project's styles/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


class StopRequest:
    """Ctrl-C while training: the first asks for a stop after the current step (the progress
    callback then answers False, so the library saves a checkpoint of that step); a second one
    interrupts at once, as Ctrl-C normally does."""

    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _interrupted(args) -> int:
    from backend.train.checkpoint import checkpoint_path, load_checkpoint
    from backend.errors import BackendError
    from backend.styles.library import default_styles_dir

    path = checkpoint_path(args.styles_dir or default_styles_dir(), args.name)
    try:
        step = load_checkpoint(path).state["step"] if path.is_file() else None
    except BackendError:
        step = None
    if step is None:
        print("interrupted before a checkpoint was saved; nothing to resume", file=sys.stderr)
    else:
        where = f" --styles-dir {args.styles_dir}" if args.styles_dir else ""
        print(f"interrupted; checkpoint saved at step {step}; continue with: "
              f"audio-cppn train --name {args.name} --resume{where}", file=sys.stderr)
    return 130


def given_settings(args) -> dict:
    """The flat training settings given on the command line (what --resume may override)."""
    return {k: getattr(args, k) for k in CONFIG_OPTIONS if getattr(args, k) is not None}


def run(args) -> int:
    from backend.errors import Cancelled
    from backend.train.run import resume_config, train

    given = given_settings(args)
    if args.resume:
        _, config = resume_config(args.name, styles_dir=args.styles_dir, **given)
    else:
        config = TrainConfig.from_dict(given)
    bar = ProgressBar("step", quiet=args.quiet, postfix_keys=("similarity", "steps_per_s", "resolution"))
    stop = StopRequest()

    def progress(event) -> bool:
        bar(event)
        return not stop.requested

    try:
        with stop.installed():
            result = train(args.prompt, name=args.name, config=config, styles_dir=args.styles_dir,
                           progress=progress, resume=args.resume, overwrite=args.overwrite)
    except (Cancelled, KeyboardInterrupt):
        bar.close()
        return _interrupted(args)
    finally:
        bar.close()
    print(f"style {args.name}: {result.style_path}")
    print(f"  similarity best {result.best_similarity:.4f} (step {result.best_step}), "
          f"final {result.final_similarity:.4f}; {result.steps} steps in {result.duration_s:.1f} s on {result.device}")
    print(f"  preview {result.preview_path}\n  curve   {result.curve_path}\n  history {result.history_path}")
    return 0
