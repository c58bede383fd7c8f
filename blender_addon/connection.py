"""The add-on's one connection to the service: which server, the child we started, the monitor.

Module state, plain Python (no bpy): ``prefs.py`` passes the preference values in. A server is
found, in order, at the attach URL (with its token), else through ``DATA_DIR/server.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .backend_process import START_TIMEOUT, BackendProcess, serve_command
from .client import DEFAULT_TIMEOUT, BackendDown, Client, default_data_dir, read_server_file
from .monitor import Monitor


@dataclass
class BackendSettings:
    """The preference values that say how to reach or start the backend."""

    command: str = "audio-cppn"  # audio-cppn, or a Python that has the backend installed
    data_dir: str = ""  # "" = the service's default data folder
    styles_dir: str = ""  # style library passed to a backend we start ("" = its default)
    attach_url: str = ""  # a server already running elsewhere on this machine
    attach_token: str = ""

    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir.strip() else default_data_dir()


_process: BackendProcess | None = None
_monitor: Monitor | None = None


def find_client(settings: BackendSettings, *, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A client for the configured server; raises :class:`BackendDown` when none is known."""
    if settings.attach_url.strip():
        return Client(settings.attach_url.strip(), settings.attach_token.strip(), timeout=timeout)
    if _process is not None and _process.info is not None and _process.running():
        return Client(_process.info.url, _process.info.token, timeout=timeout)
    info = read_server_file(settings.data_path())
    if info is None:
        raise BackendDown("Backend not running", "start it in the Audio CPPN panel or the add-on's preferences")
    return Client(info.url, info.token, timeout=timeout)


def start(settings: BackendSettings, *, wait: bool = True) -> Client | None:
    """Start ``audio-cppn serve`` as our child (or reuse the one running). ``wait``: block until it
    answers and return its client (headless); otherwise return None at once and let ``poll_start``
    (Blender's timer) notice when it is up."""
    global _process
    if _process is None or not _process.running():
        data_dir = settings.data_path()
        _process = BackendProcess(serve_command(settings.command, data_dir, settings.styles_dir), data_dir)
        if wait:
            _process.start()
        else:
            _process.launch()
            return None
    elif wait and _process.info is None:
        _process.wait_ready()
    restart_monitor(settings)
    return find_client(settings)


def starting() -> bool:
    """Whether our child was launched and has not announced itself yet."""
    return _process is not None and _process.info is None and _process.process is not None


def poll_start(settings: BackendSettings) -> str:
    """Called by the timer while starting: "" when nothing to do or ready, else an error message."""
    global _process
    if not starting():
        return ""
    try:
        if _process.poll_ready() is not None:
            restart_monitor(settings)
        elif time.monotonic() - _process.started > START_TIMEOUT:
            _process.stop()
            _process = None
            return f"the backend did not start within {START_TIMEOUT:.0f} s"
    except BackendDown as exc:
        _process = None
        return str(exc)
    return ""


def stop() -> bool:
    """Stop the child we started; False when we started none (an attached server is left alone)."""
    global _process
    process, _process = _process, None
    stop_monitor()
    if process is None:
        return False
    process.stop()
    return True


def we_started_it() -> bool:
    return _process is not None and _process.running()


def monitor(settings: BackendSettings) -> Monitor | None:
    """The running monitor, started on first use when a server is known."""
    global _monitor
    if _monitor is None or not _monitor.alive():
        try:
            _monitor = Monitor(find_client(settings))
        except BackendDown:
            _monitor = None
    return _monitor


def restart_monitor(settings: BackendSettings) -> Monitor | None:
    stop_monitor()
    return monitor(settings)


def stop_monitor() -> None:
    global _monitor
    if _monitor is not None:
        _monitor.stop()
    _monitor = None
