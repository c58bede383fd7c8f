"""The ``audio-cppn`` command line: one small module per command, all calling library functions.

Each command module has ``add_parser(subparsers)`` (which sets ``func``) and a ``run(args)``
returning an exit code. :func:`main` turns every :class:`BackendError` into one line on stderr
and exit code 2 — never a traceback for a mistake the user can fix.
"""

from __future__ import annotations

import argparse
import os
import sys

from backend import __version__
from backend.cli import console

COMMANDS = ("features", "styles", "render", "demo", "train", "score", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = console.Parser(
        prog="audio-cppn",
        description="Music-reactive CPPN visuals: analyse audio, train styles from text, render frames.",
        epilog="Run 'audio-cppn COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"audio-cppn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in COMMANDS:  # imported here: each command loads its heavy libraries only when run
        importlib.import_module(f"backend.cli.{name}_cmd").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "audio-cppn", "numba"))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return console.run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
