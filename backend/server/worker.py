"""The worker: one thread of the HTTP server that runs queued jobs, in order, in the compute process.

It never computes: it hands a job to :mod:`backend.server.compute`, relays its progress into the
store (and into memory, for fast polling), forwards cancel requests, and records how the job
ended. When the compute process dies (a native crash, an out-of-memory kill) the job is marked
failed and the next job gets a fresh process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from backend.server.store import JobStore

log = logging.getLogger("audio_cppn.service")
STORE_PROGRESS_EVERY_S = 1.0  # the store's copy of a running job's progress (memory has the latest)
COMPUTE_LOG_BYTES = 1 << 20  # the compute process's stderr (tracebacks of unexpected errors) rotates at start
COMPUTE_NICE = int(os.environ.get("AUDIO_CPPN_COMPUTE_NICE", 10))  # the compute process yields the CPU


class ComputeProcess:
    """The child process and its two pipes."""

    def __init__(self, device: str, styles_dir: Path, log_file: Path):
        self.device = device
        self.styles_dir = styles_dir
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._lock = threading.Lock()

    def start(self) -> dict:
        """Start it and wait for its ``ready`` event (raises RuntimeError with its error otherwise)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.log_file.exists() and self.log_file.stat().st_size > COMPUTE_LOG_BYTES:
            os.replace(self.log_file, self.log_file.with_name(self.log_file.name + ".1"))  # keep one old file
        with open(self.log_file, "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backend.server.compute", "--device", self.device,
                 "--styles-dir", str(self.styles_dir), "--parent", str(os.getpid()), "--nice", str(COMPUTE_NICE)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True, bufsize=1)
        event = self.next_event()
        if event is None or event.get("event") != "ready":
            self.stop()
            error = (event or {}).get("error") or {"message": "the compute process did not start; see logs/compute.log"}
            raise RuntimeError(error["message"])
        self.info = event
        return event

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, **command) -> bool:
        with self._lock:
            if not self.alive:
                return False
            try:
                self.proc.stdin.write(json.dumps(command) + "\n")
                self.proc.stdin.flush()
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False

    def next_event(self) -> dict | None:
        """The next event, or None once the process has ended."""
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        with self._lock:
            try:
                self.proc.stdin.close()  # EOF: it exits after the current frame
            except (BrokenPipeError, OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

    def exit_description(self) -> str:
        code = self.proc.wait() if self.proc is not None else None
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            why = " (killed: out of memory?)" if name == "SIGKILL" else ""
            return f"the compute process died from {name}{why}"
        return f"the compute process exited with code {code}"


class Worker:
    def __init__(self, store: JobStore, compute: ComputeProcess):
        self.store = store
        self.compute = compute
        self.current: int | None = None  # the running job's id
        self.live: dict[int, dict] = {}  # job id -> {"progress", "rate", "eta_s"}: fresher than the store
        self._wake = threading.Event()
        self._stopping = False
        self._release = False
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="worker", daemon=True)
        self.compute_state = "starting"

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: int) -> None:
        if self.current == job_id:
            self.compute.send(cmd="cancel", job=job_id)

    def release(self, timeout: float = 30.0) -> bool:
        """Stop the compute process (frees every model and the device memory); False while a job runs."""
        if self.current is not None:
            return False
        self._released.clear()
        self._release = True
        self.wake()
        return self._released.wait(timeout)

    def shutdown(self, timeout: float = 300.0) -> None:
        """Ctrl-C / SIGTERM: the running job finishes its frame or step and is recorded interrupted."""
        self._stopping = True
        current = self.current
        if current is not None:
            self.compute.send(cmd="interrupt", job=current)
        self.wake()
        self._thread.join(timeout)
        self.compute.stop()

    # --- the thread ---

    def _loop(self) -> None:
        try:
            self._ensure_compute()
        except RuntimeError as exc:
            log.info("compute process failed to start: %s", exc)
        while not self._stopping:
            if self._release:
                self.compute.stop()
                self.compute_state = "released"
                self._release = False
                log.info("released: compute process stopped, device memory freed")
                self._released.set()
            job = self.store.next_queued()
            if job is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._run(job)

    def _ensure_compute(self) -> None:
        if not self.compute.alive:
            self.compute_state = "starting"
            self.compute.start()
            self.compute_state = "ready"

    def _run(self, job: dict) -> None:
        job_id = job["id"]
        resumed = job["attempts"] > 0
        self.store.start(job_id)
        self.current = job_id
        log.info("job %d %s (%s, attempt %d)", job_id, "resumed" if resumed else "started", job["kind"],
                 job["attempts"] + 1)
        try:
            self._ensure_compute()
        except RuntimeError as exc:
            state = "interrupted" if self._stopping else "failed"  # a signal to the process group while starting
            self._end(job_id, state, error={"kind": "DeviceUnavailable", "message": str(exc), "fix": None})
            return
        started = time.monotonic()
        self.compute.send(cmd="run", job=job_id, kind=job["kind"], request=job["request"], resumed=resumed)
        if self.store.get(job_id)["cancel_requested"]:  # cancelled between queue and start
            self.compute.send(cmd="cancel", job=job_id)
        if self._stopping:  # the shutdown began while this job was being picked
            self.compute.send(cmd="interrupt", job=job_id)
        rate = _Rate()
        stored = 0.0
        while True:
            event = self.compute.next_event()
            if event is None:  # the process died under the job
                why = self.compute.exit_description()
                self.compute.proc = None
                self.compute_state = "crashed"
                state = "interrupted" if self._stopping else "failed"  # a shutdown resumes it at the next start
                if self.store.get(job_id)["cancel_requested"]:
                    state = "cancelled"
                self._end(job_id, state, error={"kind": "ComputeCrashed", "message": why,
                                                "fix": "see logs/compute.log; the next job gets a fresh process"})
                return
            if event["event"] == "progress" and event["job"] == job_id:
                progress = event["progress"]
                self.live[job_id] = {"progress": progress, **rate.update(progress)}
                if time.monotonic() - stored >= STORE_PROGRESS_EVERY_S:
                    self.store.set_progress(job_id, progress)
                    stored = time.monotonic()
            elif event["event"] == "end" and event["job"] == job_id:
                self.compute.info.update(event.get("memory") or {})
                state = event["state"]
                if state in ("cancelled", "interrupted"):  # a user's cancel wins over a shutdown's interrupt
                    state = "cancelled" if self.store.get(job_id)["cancel_requested"] else "interrupted"
                self._end(job_id, state, result=event.get("result"), error=event.get("error"),
                          progress=event.get("progress"), seconds=time.monotonic() - started)
                return

    def _end(self, job_id: int, state: str, *, result=None, error=None, progress=None, seconds=None) -> None:
        self.store.finish(job_id, state, result=result, error=error, progress=progress)
        self.current = None
        self.live.pop(job_id, None)
        took = f" after {seconds:.1f} s" if seconds is not None else ""
        detail = f": {error['message']}" if error and state == "failed" else ""
        log.info("job %d %s%s%s", job_id, state, took, detail)


class _Rate:
    """Units per second within the current stage, and the seconds left at that rate."""

    def __init__(self):
        self.stage = None
        self.t0 = 0.0
        self.done0 = 0

    def update(self, progress: dict) -> dict:
        now = time.monotonic()
        if progress["stage"] != self.stage:
            self.stage, self.t0, self.done0 = progress["stage"], now, progress["done"]
            return {"rate": None, "eta_s": None}
        elapsed = now - self.t0
        rate = (progress["done"] - self.done0) / elapsed if elapsed > 0 else 0.0
        if rate <= 0:
            return {"rate": None, "eta_s": None}
        left = max(0, progress["total"] - progress["done"]) / rate if progress["total"] else None
        return {"rate": round(rate, 3), "eta_s": round(left, 2) if left is not None else None}
