"""The service's own cost: a 1-frame render through ``audio-cppn serve`` vs the same library call,
and how fast status polls answer while a CPU render keeps the compute process busy.

    python -m bench.bench_service [--repeats 5] [--poll-seconds 10]

A real ``audio-cppn serve --port 0`` in a temporary data dir; warm (one job first, so numba and
torch are loaded in its compute process, as in a session where Blender has sent a job before).
Writes ``bench/results/service_cpu.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SIZE = (640, 360)


class Client:
    def __init__(self, data_dir: Path):
        info = json.loads((data_dir / "server.json").read_text())
        self.port = info["port"]
        self.headers = {"Authorization": "Bearer " + (data_dir / "token").read_text().strip(),
                        "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def call(self, method: str, path: str, body=None):
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                                  headers=self.headers)
                response = self.conn.getresponse()
                return response.status, json.loads(response.read())
            except (ConnectionError, http.client.HTTPException):  # the server closed an idle keep-alive
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise

    def run(self, request: dict, poll_s: float = 0.005) -> tuple[float, dict]:
        """Seconds from POST to the job seen done, and the job."""
        started = time.perf_counter()
        status, job = self.call("POST", "/jobs", request)
        assert status == 201, job
        while job["state"] not in ("done", "failed", "cancelled"):
            time.sleep(poll_s)
            job = self.call("GET", f"/jobs/{job['id']}")[1]
        assert job["state"] == "done", job
        return time.perf_counter() - started, job


def _start(data_dir: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("audio-cppn")
    proc = subprocess.Popen([str(exe), "serve", "--port", "0", "--data-dir", str(data_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(3000):
        try:
            if json.loads((data_dir / "server.json").read_text())["pid"] == proc.pid:
                return proc
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the service did not start")


def _song(folder: Path, seconds: float) -> Path:
    from backend.audio.demo_track import synthesize_demo
    import soundfile as sf

    y, score = synthesize_demo(44100)
    path = folder / f"song_{seconds:g}s.wav"
    sf.write(str(path), y[: int(seconds * score.sample_rate)], score.sample_rate)
    return path


def _stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.median(ms)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}


def _library_frame(song: Path, out: Path, repeats: int) -> list[float]:
    """The same 1-frame render through backend.render.job.render, warm, in this process."""
    from backend.render.job import RenderConfig, render

    config = dict(width=SIZE[0], height=SIZE[1], format="png", frames=(1, 1), overwrite=True)
    render(song, "aurora", out / "lib_warm", config=RenderConfig(**config))
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        render(song, "aurora", out / f"lib_{i}", config=RenderConfig(**config))
        times.append(time.perf_counter() - started)
    return times


def _polls(client_factory, path: str, seconds: float) -> list[float]:
    client = client_factory()
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        status, _ = client.call("GET", path)
        latencies.append(time.perf_counter() - started)
        assert status == 200
        time.sleep(0.02)  # a polling client, not a flood: Blender's timer polls a few times a second
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="1-frame renders per side (default 5)")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="seconds of polling per case (default 10)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    short, long = _song(work, 2.0), _song(work, 16.0)
    data = work / "data"
    data.mkdir()
    proc = _start(data)
    try:
        client = Client(data)
        request = {"kind": "render", "audio": str(short), "style": "aurora", "width": SIZE[0], "height": SIZE[1],
                   "format": "png", "frames": [1, 1], "overwrite": True}
        client.run({**request, "output": str(work / "svc_warm")})
        service_s = [client.run({**request, "output": str(work / f"svc_{i}")})[0] for i in range(args.repeats)]
        library_s = _library_frame(short, work, args.repeats)
        print(f"1-frame {SIZE[0]}x{SIZE[1]} render: service {np.median(service_s):.3f} s, "
              f"library {np.median(library_s):.3f} s (medians of {args.repeats})", flush=True)

        status, busy = client.call("POST", "/jobs", {**request, "frames": None, "output": str(work / "busy")})
        assert status == 201, busy
        while client.call("GET", f"/jobs/{busy['id']}")[1].get("progress", {}) is None or \
                (client.call("GET", f"/jobs/{busy['id']}")[1]["progress"] or {}).get("stage") != "render":
            time.sleep(0.05)
        job_polls = _polls(lambda: Client(data), f"/jobs/{busy['id']}", args.poll_seconds)
        health_polls = _polls(lambda: Client(data), "/health", args.poll_seconds)
        crowd: list[float] = []
        threads = [threading.Thread(target=lambda: crowd.extend(_polls(lambda: Client(data), f"/jobs/{busy['id']}",
                                                                       args.poll_seconds / 2)))
                   for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        still = client.call("GET", f"/jobs/{busy['id']}")[1]
        client.call("POST", f"/jobs/{busy['id']}/cancel")
        print(f"during a CPU render: GET /jobs/ID {_stats(job_polls)}, /health {_stats(health_polls)}, "
              f"20 clients {_stats(crowd)}", flush=True)
    finally:
        proc.terminate()
        proc.wait(120)
    report = {
        "area": "service", "device": "cpu", "cpu": cpu_name(), "cores": os.cpu_count(),
        "python": platform.python_version(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python -m bench.bench_service " + " ".join(argv or []),
        "one_frame_render": {"size": list(SIZE), "track_s": 2.0, "repeats": args.repeats,
                             "service_median_s": round(float(np.median(service_s)), 4),
                             "library_median_s": round(float(np.median(library_s)), 4),
                             "overhead_s": round(float(np.median(service_s) - np.median(library_s)), 4),
                             "service_s": [round(t, 4) for t in service_s],
                             "library_s": [round(t, 4) for t in library_s]},
        "polls_during_cpu_render": {"render": f"{SIZE[0]}x{SIZE[1]} png, 16 s track",
                                    "render_still_running": still["state"] == "running",
                                    "job_one_client": _stats(job_polls), "health_one_client": _stats(health_polls),
                                    "job_twenty_clients": _stats(crowd)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "service_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
