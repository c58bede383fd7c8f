"""A real ``audio-cppn serve`` process on a free loopback port, and a small stdlib HTTP client for it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from signals import pulse_train, write_audio

EXE = Path(sys.executable).with_name("audio-cppn")
START_TIMEOUT_S = 180  # importing torch on a loaded 2-core CI machine can be slow
JOB_TIMEOUT_S = 300


class Service:
    """``audio-cppn serve --port 0 --data-dir DATA`` started by a test; ``stop`` sends SIGTERM."""

    def __init__(self, data_dir: Path, *, styles_dir: Path | None = None, args: tuple[str, ...] = ()):
        self.data_dir = Path(data_dir)
        self.styles_dir = styles_dir
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> "Service":
        command = [str(EXE), "serve", "--port", "0", "--data-dir", str(self.data_dir), *self.args]
        if self.styles_dir is not None:
            command += ["--styles-dir", str(self.styles_dir)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                     stderr=open(self.data_dir / "serve.stderr", "ab"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir / "serve.stderr").read_text()
            info = self.server_file()
            if info and info["pid"] == self.proc.pid:  # not a stale file left by a killed server
                self.port = info["port"]
                if self.request("GET", "/health", token=None)[0] == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError("the service did not start")

    def server_file(self) -> dict | None:
        try:
            return json.loads((self.data_dir / "server.json").read_text())
        except (OSError, ValueError):
            return None

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body=None, *, token: str | None | bool = True,
                headers: dict | None = None, raw: bytes | None = None):
        """(status, decoded JSON or bytes)."""
        all_headers = {"Content-Type": "application/json"}
        if token is True:
            token = self.token
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.getheader("content-type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data

    def submit(self, body: dict) -> dict:
        status, job = self.request("POST", "/jobs", body)
        assert status == 201, job
        return job

    def job(self, job_id: int) -> dict:
        status, job = self.request("GET", f"/jobs/{job_id}")
        assert status == 200, job
        return job

    def wait(self, job_id: int, until=lambda job: job["state"] in ("done", "failed", "cancelled"),
             timeout: float = JOB_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if until(job):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never reached the state wanted: {job}")

    def health(self) -> dict:
        return self.request("GET", "/health", token=None)[1]

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def render_request(audio: Path, output: Path, **settings) -> dict:
    return {"kind": "render", "audio": str(audio), "output": str(output), "style": "aurora",
            "width": 64, "height": 36, "format": "png", **settings}


def write_song(path: Path, seconds: float) -> Path:
    y, _ = pulse_train(120, sr=22050, duration=seconds)
    return write_audio(path, y, 22050)


def frame_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("frame_*.png"))


def identities(folder: Path) -> dict[str, tuple[int, int]]:
    """Each frame's (inode, mtime): a rewritten frame (atomic rename) gets a new inode."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in frame_files(folder)}


def all_whole(folder: Path, width: int, height: int) -> bool:
    from backend.writers.image import image_is_whole

    return all(image_is_whole(p, (width, height, 3, "uint8")) for p in frame_files(folder))


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in state  # a zombie computes nothing


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not process_gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still alive"
        time.sleep(0.05)


def p99(values) -> float:
    return float(np.percentile(np.asarray(values), 99))


__all__ = ["Service", "render_request", "write_song", "frame_files", "identities", "all_whole", "wait_gone", "p99",
           "os"]
