"""The compute process: the one process that owns the device and runs jobs, one at a time.

The HTTP server starts it (``python -m backend.server.compute``) and talks to it in JSON lines:
commands on its stdin (``run``, ``cancel``, ``interrupt``), events on its stdout (``ready``,
``progress``, ``end``). A native crash or an out-of-memory kill ends only this process; the
server marks the job failed and starts a fresh one. It dies with the server (PR_SET_PDEATHSIG),
so a killed server never leaves it writing frames; it ignores Ctrl-C, which the server turns
into "finish this frame, then stop". Each job calls the same library function as the CLI.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

PROGRESS_EVERY_S = 0.1  # progress lines at most this often (the last of a stage always goes)


class Channel:
    """Events out (one JSON object per line) and commands in, read by a thread."""

    def __init__(self, out):
        self._out = out
        self._lock = threading.Lock()
        self.commands: queue.Queue = queue.Queue()
        self.stops: dict[int, str] = {}  # job id -> "cancel" or "interrupt"
        self.server_gone = False
        threading.Thread(target=self._read, daemon=True, name="commands").start()

    def send(self, **event) -> None:
        line = json.dumps(event, default=str)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def _read(self) -> None:
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] in ("cancel", "interrupt"):
                self.stops.setdefault(command["job"], command["cmd"])
            else:
                self.commands.put(command)
        self.server_gone = True  # stop after this frame
        self.commands.put({"cmd": "exit"})

    def stop_of(self, job_id: int) -> str | None:
        return "interrupt" if self.server_gone else self.stops.get(job_id)


class JobProgress:
    """The progress callback of one job: forwards events (throttled) and answers False to stop."""

    def __init__(self, channel: Channel, job_id: int):
        self.channel = channel
        self.job_id = job_id
        self._sent = 0.0
        self._stage = None
        self.last: dict | None = None

    def __call__(self, event) -> bool:
        now = time.monotonic()
        self.last = {"stage": event.stage, "done": event.done, "total": event.total,
                     "fraction": event.fraction, "message": event.message,
                     "info": {k: v for k, v in event.info.items() if isinstance(v, (int, float, str))}}
        final = bool(event.total) and event.done >= event.total
        if final or event.stage != self._stage or now - self._sent >= PROGRESS_EVERY_S:
            self.channel.send(event="progress", job=self.job_id, progress=self.last)
            self._sent, self._stage = now, event.stage
        return self.channel.stop_of(self.job_id) is None


def resolve_server_device(device: str) -> str:
    """``--device`` of ``serve`` -> what jobs asking for "auto" get: "cpu" or "cuda" (cuda:N made current)."""
    import torch

    from backend.errors import DeviceUnavailable

    text = str(device).lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if not text.startswith("cuda") or not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {device} was requested but no usable CUDA GPU is visible",
                                fix="use --device cpu or auto")
    index = int(text.split(":", 1)[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    torch.cuda.set_device(index)
    return "cuda"


def device_info(device: str) -> dict:
    import torch

    info = {"device": device, "cuda_available": bool(torch.cuda.is_available()), "torch": torch.__version__,
            "gpu": None, "gpu_memory_total_mb": None, "gpu_memory_free_mb": None}
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        info.update(gpu=torch.cuda.get_device_name(), gpu_memory_total_mb=total // 2**20,
                    gpu_memory_free_mb=free // 2**20)
    return info


def run_job(kind: str, data: dict, *, device: str, styles_dir: Path, resumed: bool, progress) -> dict:
    """Run one validated request with the library function the CLI uses; returns the job's result."""
    from backend.server import requests

    r, given = requests.parse_stored(data)
    job_device = device if r.get("device", "auto") == "auto" else None
    if kind == "render":
        from backend.render.job import render

        config = requests.render_config(r, device=job_device)
        if resumed:
            config.overwrite = False  # the first attempt already cleared what overwrite replaces
        result = render(r["audio"], r["style"], r["output"], config=config, video=r.get("video"),
                        styles_dir=styles_dir, progress=progress)
        return {"output": str(result.output), "video": str(result.video) if result.video else None,
                "manifest": str(result.manifest) if result.manifest else None,
                "first_frame": result.first_frame, "last_frame": result.last_frame,
                "frames_rendered": result.frames_rendered, "frames_skipped": result.frames_skipped,
                "style": r["style"], "device": result.device, "precision": result.precision,
                "render_s": round(result.render_s, 3), "elapsed_s": round(result.elapsed_s, 3)}
    if kind == "train":
        return _train(r, given, device=job_device, styles_dir=styles_dir, resumed=resumed, progress=progress)
    if kind == "features":
        from backend.atomic import write_bytes
        from backend.audio.features import analyze
        from backend.audio.files import features_bytes

        features = analyze(r["audio"], config=requests.audio_config(r), progress=progress)
        outputs = [(r["output"], features_bytes(features, Path(r["output"]).suffix))]  # both or neither, as the CLI
        if r.get("plot"):
            from backend.audio.plot import plot_png

            outputs.append((r["plot"], plot_png(features, title=str(r["audio"]))))
        for target, data in outputs:
            write_bytes(target, data)
        return {"output": r["output"], "plot": r.get("plot"), "n_frames": int(features.n_frames),
                "first_frame": int(features.frame_start), "last_frame": int(features.frame_start + features.n_frames - 1),
                "tempo": float(features.tempo), "duration": float(features.duration)}
    raise ValueError(f"unknown job kind {kind!r}")


def _train(r: dict, given: set[str], *, device: str | None, styles_dir: Path, resumed: bool, progress) -> dict:
    from backend.server import requests
    from backend.train.checkpoint import checkpoint_path
    from backend.train.run import resume_config, train

    name = r["name"]
    has_checkpoint = checkpoint_path(styles_dir, name).is_file()
    style_file = styles_dir / f"{name}.safetensors"
    if resumed and not has_checkpoint and style_file.exists() and not r["resume"]:
        return {"style": name, "style_path": str(style_file), "resumed": "finished before the restart"}
    if r["resume"]:
        overrides = {k: r[k] for k in given if k in requests.TRAIN_CONFIG_FIELDS}
        if isinstance(overrides.get("resolutions"), list):
            overrides["resolutions"] = tuple(overrides["resolutions"])
        if device:
            overrides["device"] = device
        _, config = resume_config(name, styles_dir=styles_dir, **overrides)
        resume, overwrite = True, False
    else:
        config = requests.train_config(r, device=device)
        resume = resumed and has_checkpoint  # a restarted job continues from its own last checkpoint
        overwrite = r["overwrite"] or (resumed and not has_checkpoint)
    result = train(r.get("prompt"), name=name, config=config, styles_dir=styles_dir, progress=progress,
                   resume=resume, overwrite=overwrite)
    return {"style": name, "style_path": str(result.style_path), "preview": str(result.preview_path),
            "history": str(result.history_path), "curve": str(result.curve_path),
            "best_similarity": result.best_similarity, "final_similarity": result.final_similarity,
            "best_step": result.best_step, "steps": result.steps, "duration_s": round(result.duration_s, 3),
            "device": result.device}


def error_of(exc: BaseException) -> dict:
    from backend.errors import BackendError

    if isinstance(exc, BackendError):
        return {"kind": type(exc).__name__, "message": exc.message, "fix": exc.fix}
    if isinstance(exc, MemoryError):
        return {"kind": "OutOfMemory", "message": "out of memory", "fix": "render smaller frames or free memory"}
    return {"kind": "InternalError", "message": f"{type(exc).__name__}: {exc}",
            "fix": "see logs/compute.log in the server's data folder"}


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the server dies, however it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="audio-cppn's compute process (started by 'audio-cppn serve')")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--styles-dir", type=Path, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a stray print from any library must not corrupt the event stream
    _die_with_parent()
    if os.getppid() != args.parent:
        return 0  # the server died before we could ask to die with it
    # Ctrl-C (and `timeout`, `kill -TERM -PGID`) signal the whole process group: the server gets them
    # and asks us to stop after the current frame; stopping here mid-frame would lose that frame.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.nice:
        os.nice(args.nice)  # the HTTP server must answer at once while we compute
    channel = Channel(out)
    from backend.errors import BackendError

    try:
        device = resolve_server_device(args.device)
        channel.send(event="ready", pid=os.getpid(), **device_info(device))
    except BackendError as exc:
        channel.send(event="failed", error=error_of(exc))
        return 2
    while True:
        command = channel.commands.get()
        if command["cmd"] == "exit":
            return 0
        job_id = command["job"]
        progress = JobProgress(channel, job_id)
        try:
            result = run_job(command["kind"], command["request"], device=device, styles_dir=args.styles_dir,
                             resumed=command.get("resumed", False), progress=progress)
            end = {"state": "done", "result": result}
        except BaseException as exc:  # noqa: BLE001 - every failure is reported; the process lives on
            from backend.errors import Cancelled

            if isinstance(exc, Cancelled):
                end = {"state": "interrupted" if channel.stop_of(job_id) == "interrupt" else "cancelled",
                       "error": error_of(exc)}
            else:
                if not isinstance(exc, BackendError):
                    traceback.print_exc()
                end = {"state": "failed", "error": error_of(exc)}
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        channel.stops.pop(job_id, None)
        channel.send(event="end", job=job_id, progress=progress.last, memory=device_info(device), **end)


if __name__ == "__main__":
    sys.exit(main())
