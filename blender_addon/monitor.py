"""A worker thread that polls the service, so Blender's main thread never waits on the network.

The thread only talks HTTP and stores what it learnt in a :class:`Snapshot`; it never touches
bpy. Blender's one timer (``poller.py``) reads the latest snapshot on the main thread. Health is
polled every ``interval`` seconds with a 1.5 s timeout, so a lost backend shows within ~2 s.
Plain Python, no bpy: tested against a real service.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .client import BackendDown, Client, ClientError, NotFound
from .job_request import JobStatus, health_text, parse_job

POLL_INTERVAL = 0.5  # seconds between polls
POLL_TIMEOUT = 1.5  # seconds per status request: a hung backend is noticed within ~2 s
LIBRARY_TIMEOUT = 15.0  # seconds for the style list and previews (this thread only)


@dataclass
class Snapshot:
    """What the service looked like at ``time`` (monotonic seconds)."""

    time: float = 0.0
    connected: bool = False
    status: str = "Backend not running"
    fix: str = ""
    health: dict = field(default_factory=dict)
    jobs: dict[str, JobStatus] = field(default_factory=dict)  # watched job id -> last status
    styles: list[dict] | None = None  # None until fetched; refreshed on request
    styles_version: int = 0  # bumped whenever ``styles`` changes
    previews: dict[str, str] = field(default_factory=dict)  # style name -> downloaded preview PNG


class Monitor:
    """Polls one service in a daemon thread; ``watch(job_id)`` adds a job to follow."""

    def __init__(self, client: Client, *, interval: float = POLL_INTERVAL, preview_dir: str | None = None):
        self.client = Client(client.url, client.token, timeout=POLL_TIMEOUT)
        # The style list and previews read files on the server: slower, and never a sign of a lost backend.
        self.library_client = Client(client.url, client.token, timeout=LIBRARY_TIMEOUT)
        self.preview_dir = Path(preview_dir or tempfile.mkdtemp(prefix="audio-cppn-previews-"))
        self.preview_dir.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._watched: set[str] = set()
        self._want_styles = True
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audio-cppn-monitor", daemon=True)
        self._thread.start()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def watch(self, job_id: str) -> None:
        with self._lock:
            self._watched.add(job_id)
        self._wake.set()

    def unwatch(self, job_id: str) -> None:
        with self._lock:
            self._watched.discard(job_id)

    def refresh_styles(self) -> None:
        self._want_styles = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll_once()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any surprise (a full disk, ...)
                with self._lock:
                    self._snapshot = Snapshot(time=time.monotonic(), status=f"Monitor error: {exc}")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _poll_once(self) -> None:
        old = self.snapshot()
        new = Snapshot(time=time.monotonic(), jobs=dict(old.jobs), styles=old.styles,
                       styles_version=old.styles_version, previews=dict(old.previews))
        try:
            new.health = self.client.health()
            new.connected, new.status = True, health_text(new.health)
            with self._lock:
                watched = set(self._watched)
            for job_id in watched:
                try:
                    status = parse_job(self.client.job(job_id))
                except NotFound:
                    status = JobStatus(id=job_id, kind="", state="failed", error="the backend forgot this job",
                                       fix="render again")
                before = new.jobs.get(job_id)
                new.jobs[job_id] = status
                if status.kind == "train" and status.state == "done" and (before is None or not before.finished):
                    self._want_styles = True  # the new style appears in the picker
                if status.finished:
                    self.unwatch(job_id)
            if self._want_styles:
                self._fetch_library(new)
        except BackendDown as exc:
            new.connected, new.status, new.fix = False, "Backend not running", exc.message
        except ClientError as exc:
            new.connected, new.status, new.fix = False, exc.message, exc.fix
        with self._lock:
            self._snapshot = new


    def _fetch_library(self, new: Snapshot) -> None:
        """Styles and their previews; a failure leaves the old list and is retried on the next poll."""
        try:
            styles = self.library_client.styles()
            new.previews.update(self._fetch_previews(styles))
        except ClientError:
            return
        new.styles = styles
        new.styles_version += 1
        self._want_styles = False

    def _fetch_previews(self, styles: list[dict]) -> dict[str, str]:
        """Download each style's preview PNG once per content (a retrained style gets a new file)."""
        paths = {}
        for style in styles:
            name = style.get("name") if isinstance(style, dict) else None
            if not name or not style.get("preview"):
                continue
            try:
                data = self.library_client.style_preview(name)
            except BackendDown:
                raise
            except ClientError:  # no preview, or a broken one: the picker shows the name alone
                continue
            path = self.preview_dir / f"{hashlib.sha1(data).hexdigest()[:16]}.png"
            if not path.exists():
                path.write_bytes(data)
            paths[name] = str(path)
        return paths


def wait_for_job(client: Client, job_id: str, *, on_progress=None, interval: float = 0.25,
                 lost_after: float = 2.0) -> JobStatus:
    """Poll a job until it finishes (the headless path). Raises :class:`BackendDown` when the service
    has not answered for ``lost_after`` seconds: a clear error within ~3 s, never a hang."""
    poller = Client(client.url, client.token, timeout=min(client.timeout, 1.0))
    last_answer = time.monotonic()
    while True:
        try:
            status = parse_job(poller.job(job_id))
            last_answer = time.monotonic()
        except BackendDown as exc:
            if time.monotonic() - last_answer >= lost_after:
                raise BackendDown(f"the backend stopped answering during job {job_id}",
                                  "start the backend again and run the same operator: the job resumes") from exc
            time.sleep(interval)
            continue
        if on_progress is not None:
            on_progress(status)
        if status.finished:
            return status
        time.sleep(interval)
