"""What the CLI shows a person: progress bars built from progress events, and one-line errors."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Callable

from backend.errors import BackendError, InvalidInput
from backend.model.device import ALL_KINDS, check_device_name
from backend.progress import Progress


REDRAW_S = 0.1  # a terminal: smooth enough to watch
LOG_REDRAW_S = 10.0  # a log file or pipe (CI, render farms): a line every 10 s, not one per frame


def error_line(exc: BackendError) -> str:
    """One line: what is wrong, and how to fix it when we know."""
    return f"error: {exc.message}" + (f" (fix: {exc.fix})" if exc.fix else "")


MAX_INT_OPTION = 2**31 - 1  # no whole-number option means more; each command's library bounds it further


def whole_number(text: str) -> int:
    """Every ``type=int`` option: a plain whole number of sane size, parsed at once (never a 400-digit seed)."""
    stripped = str(text).strip()
    digits = stripped.lstrip("+-")
    if not digits.isdigit() or not digits.isascii():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {stripped[:40]!r}")
    if len(digits) > 10 or abs(int(stripped)) > MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(f"must be a whole number from {-MAX_INT_OPTION} to {MAX_INT_OPTION}, "
                                         f"got {stripped[:24] + ('...' if len(stripped) > 24 else '')}")
    return int(stripped)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors like every other error of the CLI (exit code 2, no usage block),
    and bounded whole numbers for every ``type=int`` option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", int, whole_number)  # argument groups share this registry

    def error(self, message: str):
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def device_type(kinds: tuple[str, ...] = ALL_KINDS) -> Callable[[str], str]:
    """An argparse ``type`` for ``--device``: the spelling is checked while parsing (torch is not
    loaded for that); whether the device exists is checked when the command runs."""
    def parse(text: str) -> str:
        try:
            return check_device_name(text, kinds)
        except InvalidInput as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    parse.__name__ = "device"  # argparse names the type in its messages
    return parse


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every ``finally`` removes what the run left half-done."""


def _terminate(signum, frame):
    # Raised inside llvmlite's ctypes callbacks or finalisers (numba compiling on a cold cache), the
    # exception would be swallowed and printed as "Exception ignored": ask again a moment later.
    if frame is not None and "llvmlite" in frame.f_code.co_filename:
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    raise Terminated()


def run_command(func: Callable, args) -> int:
    """Run a command; a BackendError becomes one line on stderr and its exit code (2).

    SIGTERM (a job scheduler, ``kill``) is handled like Ctrl-C: the run stops, unfinished files
    are removed, and the exit code is 143.
    """
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        code = func(args)
    except BrokenPipeError:  # `audio-cppn styles --json | head`: the reader left, not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BackendError as exc:
        print(error_line(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return 143
    except OSError as exc:  # the file system refused something no check foresaw: still one line
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0 if code is None else code


class ProgressBar:
    """A progress callback drawing one tqdm bar per stage; ``unit`` names what is counted."""

    def __init__(self, unit: str = "it", *, quiet: bool = False, postfix_keys: tuple[str, ...] = ()):
        self.unit = unit
        self.quiet = quiet
        self.postfix_keys = postfix_keys
        self._bar = None
        self._stage = None
        self._message = ""
        self.started = time.perf_counter()
        self._drawn = 0.0
        self._interval = REDRAW_S if sys.stderr.isatty() else LOG_REDRAW_S

    def __call__(self, event: Progress) -> bool:
        if self.quiet:
            return True
        from tqdm import tqdm

        if event.stage != self._stage:
            self.close()
            self._stage = event.stage
            self._drawn = 0.0  # a new stage draws its first line at once
            self._bar = tqdm(total=event.total or None, desc=event.stage, unit=self.unit,
                             dynamic_ncols=True, file=sys.stderr, leave=True)
        bar = self._bar
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.n = event.done
        post = {k: event.info[k] for k in self.postfix_keys if k in event.info}
        if post:
            bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in post.items()},
                            refresh=False)
        shown_now = False
        if not post and event.message and event.message != self._message:
            bar.set_postfix_str(event.message, refresh=False)  # what the stage does now, e.g. "finding beats"
            self._message, shown_now = event.message, True
        # Redraw at most every REDRAW_S (a log file gets one line per LOG_REDRAW_S), and at the end.
        now = time.perf_counter()
        finished = bool(event.total) and event.done >= event.total
        if finished or shown_now or now - self._drawn >= self._interval:
            bar.refresh()
            self._drawn = now
        return True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
