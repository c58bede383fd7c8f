"""Audio analysis speed and memory: a 5-minute track (target: under 15 s on CPU with a warm numba
cache) and a long stream that shows memory does not grow with a spectrogram of the file.

    python -m bench.bench_audio [--minutes 5] [--long-minutes 60] [--fps 30]

Each measurement runs in a fresh Python process (what a user of ``audio-cppn features`` waits
for: imports, numba cache loading and librosa's uncached beat kernel included) and, for the
steady state, a second time in that process. Test tracks are built from the demo track in the
ignored ``.cache/bench`` folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".cache" / "bench"


def _track(minutes: float, fmt: str) -> Path:
    """The demo track repeated to ``minutes``, as a 44.1 kHz stereo file (made once)."""
    import soundfile as sf

    from backend.audio.demo_track import synthesize_demo

    path = CACHE / f"demo_{minutes:g}min.{fmt}"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        y, score = synthesize_demo(44100)
        n = int(minutes * 60 * score.sample_rate)
        tiled = np.tile(y, (n // len(y) + 1, 1))[:n]
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(str(tmp), tiled, score.sample_rate, format=fmt.upper())
        os.replace(tmp, path)
    return path


def _measure_file(path: str, fps: str) -> dict:
    """Child process: time analyze() twice on ``path``."""
    from backend.audio.features import AudioConfig, analyze

    config = AudioConfig(fps=fps)
    start = time.perf_counter()
    features = analyze(path, config=config)
    first = time.perf_counter() - start
    start = time.perf_counter()
    analyze(path, config=config)
    second = time.perf_counter() - start
    return {"first_s": first, "steady_s": second, "frames": features.n_frames, "tempo": features.tempo,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _measure_stream(minutes: float, fps: str) -> dict:
    """Child process: analyse ``minutes`` of audio generated block by block (no file, no full array)."""
    from backend.audio.features import AudioConfig, analyze_blocks
    from backend.audio.demo_track import synthesize_demo

    y, score = synthesize_demo(44100)
    total = int(minutes * 60 * score.sample_rate)
    block = 30 * score.sample_rate

    def blocks():
        for start in range(0, total, block):
            idx = (np.arange(start, min(total, start + block)) % len(y))
            yield y[idx]

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    features = analyze_blocks(blocks(), score.sample_rate, config=AudioConfig(fps=fps), expected_samples=total)
    return {"seconds": time.perf_counter() - start, "frames": features.n_frames, "tempo": features.tempo,
            "baseline_rss_mb": baseline,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(*args: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))}
    out = subprocess.run([sys.executable, "-m", "bench.bench_audio", *args], capture_output=True, text=True,
                         check=True, cwd=ROOT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the timed track (default 5)")
    parser.add_argument("--long-minutes", type=float, default=60.0,
                        help="length of the streamed memory run; 0 skips it (default 60)")
    parser.add_argument("--fps", default="30")
    parser.add_argument("--child-file", help=argparse.SUPPRESS)
    parser.add_argument("--child-stream", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_file:
        print(json.dumps(_measure_file(args.child_file, args.fps)))
        return 0
    if args.child_stream:
        print(json.dumps(_measure_stream(args.child_stream, args.fps)))
        return 0

    _child("--child-file", str(_track(0.5, "wav")), "--fps", args.fps)  # fills the numba cache if cold
    rows = []
    for fmt in ("wav", "mp3"):
        path = _track(args.minutes, fmt)
        result = _child("--child-file", str(path), "--fps", args.fps)
        rows.append({"case": f"{args.minutes:g} min {fmt}, 44.1 kHz stereo, {args.fps} fps", **result})
    if args.long_minutes > 0:
        result = _child("--child-stream", str(args.long_minutes), "--fps", args.fps)
        rows.append({"case": f"{args.long_minutes:g} min streamed (memory)", "first_s": result["seconds"],
                     "steady_s": None, **{k: v for k, v in result.items() if k != "seconds"}})
    report = {"area": "audio", "device": "cpu", "cpu": cpu_name(), "cores": os.cpu_count(),
              "python": platform.python_version(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": "python -m bench.bench_audio " + " ".join(sys.argv[1:]), "target_s": 15.0,
              "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audio_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"audio analysis on {report['cpu']} ({report['cores']} cores); target: 5 min track < 15 s\n")
    print("| case | fresh process (s) | steady (s) | frames | tempo | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        steady = f"{r['steady_s']:.2f}" if r.get("steady_s") is not None else "-"
        print(f"| {r['case']} | {r['first_s']:.2f} | {steady} | {r['frames']} | {r['tempo']:.1f} | "
              f"{r['peak_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
