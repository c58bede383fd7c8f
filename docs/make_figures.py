"""Regenerates the README's figures from the bundled demo track: ``python -m docs.make_figures``.

* ``docs/demo_features.png`` — the feature plot, exactly what ``audio-cppn features --demo --plot`` draws;
* ``docs/demo_frames.png`` — the default style: a kick at 4 s (frames 119-124), then the drift over the song.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.atomic import write_bytes
from backend.audio.features import AudioConfig, analyze
from backend.audio.demo_track import demo_track_path
from backend.audio.plot import plot_png
from backend.render.frame_renderer import FrameRenderer
from backend.writers.image import write_png
from backend.styles.library import DEFAULT_STYLE, load_style

DOCS = Path(__file__).resolve().parent
TILE = (256, 144)
KICK_FRAMES = (119, 120, 121, 122, 123)
DRIFT_FRAMES = (30, 150, 270, 390, 480)


def main() -> None:
    track = demo_track_path()
    features = analyze(track, config=AudioConfig(fps=30))
    write_bytes(DOCS / "demo_features.png", plot_png(features, title=track.name))
    rows = []
    with FrameRenderer(load_style(DEFAULT_STYLE), width=TILE[0], height=TILE[1], device="cpu") as renderer:
        for frames in (KICK_FRAMES, DRIFT_FRAMES):
            index = np.asarray(frames) - features.frame_start
            tiles = renderer.render(features.times[index], features.values[index])  # (5, H, W, 3)
            rows.append(np.concatenate(list(tiles), axis=1))
    write_png(DOCS / "demo_frames.png", np.concatenate(rows, axis=0))
    print(f"wrote {DOCS / 'demo_features.png'} and {DOCS / 'demo_frames.png'}")


if __name__ == "__main__":
    main()
