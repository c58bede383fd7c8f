"""The server's files in its data dir: the token, ``server.json``, the instance lock and the logs.

``server.json`` (url, port, pid, version, token file) lets a client such as the Blender add-on
find a running server; it is written atomically once the port is bound and removed on a clean
exit. One server per data dir: an ``flock`` on ``server.lock`` (dropped by the OS however the
process ends, so never stale) refuses a second one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import secrets
from pathlib import Path

from backend import __version__
from backend.atomic import write_text
from backend.errors import Conflict, InvalidInput

SERVER_FILE = "server.json"
LOCK_FILE = "server.lock"
TOKEN_FILE = "token"
DB_FILE = "jobs.sqlite3"
LOG_BYTES = 1 << 20  # rotate the job log at 1 MiB, keeping 5 old files


def default_data_dir() -> Path:
    """The platform's user data folder (``~/.local/share/audio-cppn`` on Linux)."""
    from platformdirs import user_data_path

    return user_data_path("audio-cppn", appauthor=False)


def prepare_data_dir(folder: Path) -> Path:
    folder = Path(folder).expanduser().resolve()
    try:
        (folder / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the data dir {folder}: {exc.strerror or exc}") from None
    return folder


def read_or_create_token(path: Path) -> str:
    """The token in ``path``; a new random one (written with mode 0600) when the file does not exist."""
    path = Path(path)
    if path.exists():
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the token file {path}: {exc}") from None
        if len(token) < 16 or any(c.isspace() for c in token):
            raise InvalidInput(f"the token file {path} must hold one token of 16+ characters without spaces",
                               fix="delete it to have a new one generated")
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot write the token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


class Instance:
    """Held for the server's life: the data dir's lock, and its ``server.json``."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> "Instance":
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = read_server_file(self.data_dir) or {}
            raise Conflict(f"a server is already running for {self.data_dir}: {running.get('url', '?')} "
                           f"(pid {running.get('pid', '?')})",
                           fix="use that one, stop it, or start this one with another --data-dir") from None
        self._fd = fd
        return self

    def publish(self, *, url: str, port: int, token_file: Path) -> dict:
        info = {"url": url, "port": port, "pid": os.getpid(), "version": __version__, "token_file": str(token_file)}
        write_text(self.data_dir / SERVER_FILE, json.dumps(info, indent=2) + "\n")
        return info

    def release(self) -> None:
        (self.data_dir / SERVER_FILE).unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_server_file(data_dir: Path) -> dict | None:
    try:
        return json.loads((Path(data_dir) / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def job_log(data_dir: Path) -> logging.Logger:
    """``logs/service.log``: one line per job event, rotated; never a token."""
    logger = logging.getLogger("audio_cppn.service")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.handlers.RotatingFileHandler(data_dir / "logs" / "service.log", maxBytes=LOG_BYTES,
                                                   backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    return logger
