"""Start and stop ``audio-cppn serve`` as Blender's child process (plain Python, no bpy).

The child listens on a free port (``--port 0``) and announces itself in ``DATA_DIR/server.json``;
we wait for that file to name the child's pid. ``stop()`` asks politely (SIGTERM: the service
finishes the current frame and records the job for resume) and kills after a grace period.
An ``atexit`` hook stops every child we started, so quitting Blender never leaves an orphan
holding the GPU; the add-on also stops it from Blender's quit handler.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .client import SERVER_FILE, BackendDown, ClientError, ServerInfo, read_server_file

START_TIMEOUT = 180.0  # seconds; the first start imports torch (slow on a busy 2-core machine)
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
LOG_NAME = "blender-backend.log"
_RUNNING: list["BackendProcess"] = []


def serve_command(command: str, data_dir: Path, styles_dir: str = "") -> list[str]:
    """The argv that starts the service: ``command`` is ``audio-cppn`` (a path or a name on PATH) or a
    Python interpreter that has the backend installed (run as ``python -m backend``)."""
    command = command.strip() or "audio-cppn"
    found = shutil.which(os.path.expanduser(command))
    if found is None:
        raise BackendDown(f"the backend command {command!r} was not found",
                          "set the audio-cppn command (or a Python with the backend) in the add-on's preferences")
    name = Path(found).name.lower()
    argv = [found, "-m", "backend"] if name.startswith("python") else [found]
    argv += ["serve", "--port", "0", "--data-dir", str(data_dir)]
    if styles_dir:
        argv += ["--styles-dir", str(Path(styles_dir).expanduser())]
    return argv


class BackendProcess:
    """One ``serve`` child of this Blender."""

    def __init__(self, argv: list[str], data_dir: Path, *, env: dict | None = None):
        self.argv = argv
        self.data_dir = Path(data_dir).expanduser()
        self.env = env
        self.process: subprocess.Popen | None = None
        self.info: ServerInfo | None = None
        self.started = 0.0  # monotonic time of launch()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / LOG_NAME

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, timeout: float = START_TIMEOUT) -> ServerInfo:
        """Start the child and wait until its ``server.json`` names it; raises :class:`ClientError`."""
        self.launch()
        return self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = START_TIMEOUT) -> ServerInfo:
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            info = self.poll_ready()
            if info is not None:
                return info
            time.sleep(0.1)
        self.stop()
        raise BackendDown(f"the backend did not start within {timeout:.0f} s", f"see {self.log_path}")

    def launch(self) -> None:
        """Start the child and return at once (Blender's UI polls ``poll_ready``)."""
        existing = read_server_file(self.data_dir)
        if existing is not None and existing.pid and _alive(existing.pid):
            raise BackendDown(f"a backend already runs for {self.data_dir} (pid {existing.pid}, {existing.url})",
                              "attach to it, or stop it first")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        except OSError as exc:
            raise BackendDown(f"cannot start {self.argv[0]} ({exc.strerror})", "check the backend command") from None
        finally:
            log.close()
        self.started = time.monotonic()
        _RUNNING.append(self)

    def poll_ready(self) -> ServerInfo | None:
        """The server's info once its ``server.json`` names our child; None while it starts.
        Raises :class:`BackendDown` (with the log's last lines) when the child exited."""
        if self.info is not None:
            return self.info
        if self.process is None:
            raise BackendDown("the backend is not running", "start it")
        if self.process.poll() is not None:
            code = self.process.returncode
            self.stop()
            raise BackendDown(f"the backend exited at start (code {code}): {self.log_tail()}", f"see {self.log_path}")
        try:
            info = read_server_file(self.data_dir)
        except ClientError:
            return None  # being written
        if info is not None and info.pid == self.process.pid:
            self.info = info
        return self.info

    def stop(self, *, grace: float = STOP_GRACE) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; safe to call twice."""
        process, self.process = self.process, None
        if self in _RUNNING:
            _RUNNING.remove(self)
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server_file = self.data_dir / SERVER_FILE
        info = read_server_file(self.data_dir) if server_file.exists() else None
        if info is not None and info.pid == process.pid:
            server_file.unlink(missing_ok=True)  # a killed child cannot remove its own

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:]) or "no output"


def stop_all() -> None:
    """Stop every child this process started (Blender quit, add-on disabled, interpreter exit)."""
    for backend in list(_RUNNING):
        backend.stop()


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # no cheap check; the caller treats the server as running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody reaped yet is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


atexit.register(stop_all)
