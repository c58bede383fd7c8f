"""Paths a user hands us: names that fit the file system, and files that are really files.

Checked up front, before any slow work, so a name one byte too long or a named pipe in a style
library is one clear line, never an ``OSError 36`` after an hour of rendering or a read that
blocks forever. Only regular files are ever opened: a FIFO, a device (``/dev/zero``) or a
socket is refused by what it is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from backend.errors import InvalidInput, NotFound

NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs, APFS, NTFS in UTF-16 units)
PATH_MAX = 4096  # bytes in a whole path (Linux)


def check_path_names(path: str | os.PathLike, what: str) -> Path:
    """Refuse a path whose whole or any one component is longer than the file system allows."""
    path = Path(path)
    raw = os.fsencode(path)
    if len(raw) >= PATH_MAX:
        raise InvalidInput(f"the {what} path is {len(raw)} bytes long; paths can be at most {PATH_MAX - 1} bytes")
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            shown = part if len(part) <= 40 else part[:24] + "…" + part[-12:]
            raise InvalidInput(f"the {what} name {shown!r} is {size} bytes long; a file or folder name can be "
                               f"at most {NAME_MAX} bytes", fix="choose a shorter name")
    return path


def kind_of(mode: int) -> str:
    """What a stat mode is, in words: 'a folder', 'a named pipe (FIFO)', ..."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """The stat of ``path`` when it is a regular file (links followed); NotFound or InvalidInput otherwise."""
    path = check_path_names(path, what)
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise NotFound(f"{what} {path} is a link to a missing file") from None
        raise NotFound(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{what} {path} is {kind_of(info.st_mode)}, not a file")
    return info


def open_regular(path: str | os.PathLike, what: str) -> BinaryIO:
    """Open a regular file for reading; anything else is refused without blocking.

    O_NONBLOCK makes opening a FIFO return at once; the fstat of what was really opened then
    decides, so a file swapped for a pipe after a check is refused too.
    """
    check_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InvalidInput(f"{what} {path} is {kind_of(mode)}, not a file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def check_not_special(path: str | os.PathLike, what: str) -> None:
    """An output path may be missing or a regular file (to be replaced); anything else is refused."""
    path = check_path_names(path, what)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise InvalidInput(f"cannot write {what} {path}: {exc.strerror}") from None
        raise InvalidInput(f"cannot use {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{what} {path} is {kind_of(mode)}; give the path of a file to write")
