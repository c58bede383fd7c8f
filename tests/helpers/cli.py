"""The command line's parsers, for tests that check what ``--help`` teaches."""

from __future__ import annotations

import argparse

from backend.cli import build_parser

MIN_HELP_WORDS = 3  # "the fps" is no help; "frames per second (default 30)" is


def command_parser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def options_without_help(command: str) -> list[str]:
    """The arguments of ``audio-cppn COMMAND`` whose help is missing, hidden, a word or two, or not
    printed by ``--help`` (argparse lists every option name in the usage line, so names prove nothing)."""
    parser = command_parser(command)
    shown = "".join(parser.format_help().split())  # compared without spaces: argparse wraps lines, even at '-'
    bad = []
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.dest
        text = action.help
        if not text or text == argparse.SUPPRESS:
            bad.append(f"{name}: no help")
            continue
        words = text.split("%(")[0].replace("%%", "%").split()  # the part before any %(default)s
        if len(text.split()) < MIN_HELP_WORDS:
            bad.append(f"{name}: help {text!r} is too short to teach anything")
        elif "".join(words) not in shown:
            bad.append(f"{name}: help {text!r} is not in --help")
    return bad
