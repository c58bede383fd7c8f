"""``audio-cppn styles``: list the style library."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from backend.paths import STYLES_ENV, default_styles_dir


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "styles", help="list the styles in the library",
        description="List the style library: name, kind (procedural or trained), prompt, parameter count "
                    f"and preview image. The library is --styles-dir, else ${STYLES_ENV}, else the "
                    "project's styles/ folder.",
        epilog="examples:\n  audio-cppn styles\n  audio-cppn styles --json | jq '.[].name'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles-dir", type=Path, default=None,
                        help=f"style library folder (default: ${STYLES_ENV} or {default_styles_dir()})")
    parser.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.styles.library import list_styles  # loads torch: only when the command really runs

    problems: list[str] = []
    styles = list_styles(args.styles_dir, problems=problems)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(s) for s in styles], indent=2))
        return 0
    folder = args.styles_dir or default_styles_dir()
    if not styles:
        print(f"no styles in {folder}")
        return 0
    name_w = max(len(s.name) for s in styles)
    print(f"{'NAME':<{name_w}}  {'KIND':<10}  {'PARAMS':>7}  {'PROMPT':<44}  PREVIEW")
    for s in styles:
        prompt = s.prompt if len(s.prompt) <= 44 else s.prompt[:41] + "..."
        print(f"{s.name:<{name_w}}  {s.kind:<10}  {s.parameters:>7,}  {prompt:<44}  {s.preview or '-'}")
    print(f"\n{len(styles)} styles in {folder}")
    return 0
