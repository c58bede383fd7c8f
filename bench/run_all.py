"""Run every benchmark in turn (``make bench``); each writes ``bench/results/<area>_<device>.json``.

Run on a quiet machine: the figures are wall-clock rates on whatever CPU/GPU is present.
"""

from __future__ import annotations

import sys

from bench import bench_audio, bench_render, bench_service, bench_train


def main(argv: list[str] | None = None) -> int:
    for bench in (bench_audio, bench_render, bench_train, bench_service):
        print(f"\n## {bench.__name__}\n", flush=True)
        code = bench.main([])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
