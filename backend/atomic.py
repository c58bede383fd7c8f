"""Nothing is ever half-written: every file goes to a temporary name in its own folder, then is renamed.

One helper for every writer (frames, manifests, styles, features, plots, checkpoints, videos), so
they share the temporary-name scheme that :func:`remove_stale_temps` recognises after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from backend.errors import InvalidInput, NoSpace
from backend.user_paths import NAME_MAX, kind_of

_TEMP_MARK = ".tmp-"
_HOST = socket.gethostname().replace("-", "_").replace(".", "_")[:32] or "host"
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def hidden_sibling(path: Path, tail: str) -> Path:
    """``.<name><tail>`` beside ``path``, its name shortened (never the user's) to fit in NAME_MAX bytes.

    A long name keeps its first bytes and gains a short hash of the whole name, so two long names
    that share their start still get different siblings.
    """
    path = Path(path)
    name = path.name
    if len(os.fsencode(f".{name}{tail}")) <= NAME_MAX:
        return path.with_name(f".{name}{tail}")
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    room = NAME_MAX - len(os.fsencode(f".{tag}{tail}"))
    head = os.fsencode(name)[:room].decode("utf-8", "ignore")  # never split a character in two
    return path.with_name(f".{head}{tag}{tail}")


def temp_path(path: Path) -> Path:
    """A hidden temporary name beside ``path``, unique per host, process and thread; it fits wherever ``path`` does."""
    return hidden_sibling(path, f"{_TEMP_MARK}{_HOST}-{os.getpid()}-{threading.get_ident()}")


def os_error(exc: OSError, path: Path, doing: str = "write") -> InvalidInput:
    """The one-line error for an OSError while writing ``path``; a full disk says so."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"no space left on the disk of {Path(path).parent} (cannot {doing} {Path(path).name})",
                       fix="free some space or choose another folder")
    return InvalidInput(f"cannot {doing} {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    An OSError (no permission, disk full, missing folder) becomes InvalidInput naming ``path``.
    The file gets ordinary permissions (0666 minus the umask), as if written directly.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp and safetensors create 0600 files
        os.replace(tmp, path)
    except OSError as exc:
        raise os_error(exc, path) from None
    finally:
        with contextlib.suppress(OSError):  # nothing to remove, or the folder itself is unusable
            tmp.unlink(missing_ok=True)


def check_writable(folder: str | os.PathLike, *, create: bool = False) -> Path:
    """Fail early, before slow work, unless a file can really be created in ``folder``.

    A real probe file, not ``os.access``: root passes every permission check, even on /proc.
    ``create`` makes the folder (and its parents) first.
    """
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    _probe_writing(folder, shown=folder, blocker=blocker, create=create)
    return folder


def check_parent_writable(path: str | os.PathLike) -> Path:
    """Before any slow work and without creating anything: ``path`` could be written, because its
    nearest existing ancestor is a folder a file can really be created in."""
    path = Path(path)
    parent = next((p for p in path.parents if p.exists()), Path("."))
    blocker = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    _probe_writing(parent, shown=path.parent, blocker=blocker)
    return path


def _probe_writing(folder: Path, *, shown: Path, blocker: Path | None, create: bool = False) -> None:
    """Refuse unless ``blocker`` (the nearest existing ancestor, if any) is a folder and a probe file
    can be created in ``folder`` (made first with ``create``); errors name ``shown``."""
    if blocker is not None and not blocker.is_dir():
        what = kind_of(blocker.stat().st_mode) if blocker.exists() else "a broken link"
        raise InvalidInput(f"cannot write to {shown}: {blocker} is {what}, not a folder",
                           fix="choose a folder you can write to")
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise InvalidInput(f"cannot write to {shown}: {exc.strerror or exc}",
                           fix="choose a folder you can write to") from None


def create_folders(folder: str | os.PathLike) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first, so a failed run can remove them."""
    folder = Path(folder)
    missing = []
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            break
        missing.append(p)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create {folder}: {exc.strerror or exc}",
                           fix="choose a folder you can write to") from None
    return missing


def remove_created(folders: list[Path]) -> None:
    """Remove folders a failed run created (deepest first), as long as nothing else went into them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: someone else's files, or ours that must stay


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def remove_stale_temps(folder: Path, *, older_than_s: float = 3600.0) -> int:
    """Delete temporary files left in ``folder`` by killed processes; returns how many.

    A temporary file of this host whose process is gone is stale at once; one from another
    host (a render farm writing to a shared folder) only after ``older_than_s``.
    """
    removed = 0
    for tmp in Path(folder).glob(f".*{_TEMP_MARK}*"):
        owner = tmp.name.rsplit(_TEMP_MARK, 1)[1].split("-")
        if len(owner) != 3 or not owner[1].isdigit() or not owner[2].isdigit():
            continue  # not a name temp_path() makes: someone else's file, never ours to delete
        try:
            mine = owner[0] == _HOST
            stale = (not _pid_alive(int(owner[1]))) if mine else time.time() - tmp.stat().st_mtime > older_than_s
            if stale:
                tmp.unlink()
                removed += 1
        except (ValueError, OSError):
            continue
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
