"""One writer per output, across processes: an exclusive ``flock`` on a small file beside the frames.

The operating system drops the lock when its process ends, however it ends (SIGKILL included), so
a lock is never stale. The file only records who holds it: a release removes it, and a killed
holder's leftover (harmless, hidden) is reused by the next writer. A lock is taken on the file the
path names *now* (checked after locking), so removing it on release can never let two writers in.
A render takes the lock before it touches the folder; the service asks :func:`locked_by` to refuse
a job whose output another process (a command-line render, say) is writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

from backend.atomic import hidden_sibling
from backend.errors import Conflict, InvalidInput

LOCK_NAME = ".audio-cppn.lock"  # inside a frame folder


def lock_file(output: str | os.PathLike) -> Path:
    """Where ``output``'s lock lives: inside a folder of frames, beside an ``.mp4``."""
    output = Path(output)
    if output.suffix.lower() == ".mp4":
        return hidden_sibling(output, ".lock")  # shortened to fit beside a long name
    return output / LOCK_NAME


class OutputLock:
    """``with OutputLock(folder_or_mp4):`` - held until the block ends or the process dies.

    Raises Conflict at once (never waits) when another process or another open lock holds it.
    The output's folder must exist.
    """

    def __init__(self, output: str | os.PathLike):
        self.output = Path(output)
        self.path = lock_file(self.output)
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise Conflict(f"{self.output} is being written by {who} right now",
                               fix="wait for that render to finish or cancel it, or choose another output") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder we waited on removed it as it finished: lock the file there now
        with contextlib.suppress(OSError):  # who holds it is a courtesy; a full disk must not stop the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise InvalidInput(f"cannot lock {self.output}: {self.path} cannot be opened ({exc.strerror or exc})",
                               fix="remove it; audio-cppn makes this file while a render writes") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidInput(f"cannot lock {self.output}: {self.path} is not a regular file",
                               fix="remove it; audio-cppn makes this file while a render writes")
        return fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if _same_file(self._fd, self.path):
                    self.path.unlink()  # before unlocking: a waiter then finds no file, or a new one
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def locked_by(output: str | os.PathLike) -> int | None:
    """The pid writing ``output`` now (0 when unknown), or None when nobody holds its lock."""
    path = lock_file(output)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: never rendered into, or not a folder
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd) or 0
    except OSError:
        return None  # not a file flock works on: nobody of ours holds it
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
