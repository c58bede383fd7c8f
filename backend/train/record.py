"""A training run's record: ``NAME.history.json`` and the training-curve picture ``NAME.curve.png``.

History layout::

    {"name": ..., "prompt": ..., "steps": [{"step", "resolution", "loss", "similarity",
     "negative_similarity", "lr"}, ...], "evals": [{"step", "resolution", "similarity",
     "negative_similarity", "score"}, ...], "best": {"step", "similarity", "score"}}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backend.atomic import atomic_path, write_text


def write_history(path: Path, history: dict) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, json.dumps(history, indent=1))


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 3 or window < 2:
        return values
    window = min(window, len(values))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def write_curve(path: Path, history: dict, *, title: str = "") -> Path:
    """Similarity per step (raw and smoothed), evaluations, loss, and resolution stages."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state

    steps = history.get("steps", [])
    x = np.array([s["step"] for s in steps], dtype=float)
    sim = np.array([s["similarity"] for s in steps], dtype=float)
    loss = np.array([s["loss"] for s in steps], dtype=float)
    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if len(x):
        ax.plot(x, sim, color="tab:blue", alpha=0.25, lw=0.8, label="similarity (batch)")
        ax.plot(x, _smooth(sim, max(2, len(x) // 40)), color="tab:blue", lw=1.8, label="similarity (smoothed)")
        neg = [s.get("negative_similarity") for s in steps]
        if any(v is not None for v in neg):
            ax.plot(x, _smooth(np.array([np.nan if v is None else v for v in neg], float), max(2, len(x) // 40)),
                    color="tab:red", lw=1.2, label="negative similarity")
    evals = history.get("evals", [])
    if evals:
        ax.plot([e["step"] for e in evals], [e["similarity"] for e in evals], "o-", color="black", ms=3,
                lw=1, label="evaluation views")
    best = history.get("best") or {}
    if best.get("step") is not None:
        ax.axvline(best["step"], color="tab:green", ls=":", lw=1, label=f"best (step {best['step']})")
    previous = None
    for s in steps:  # mark where the pyramid moves to a finer resolution
        if previous is not None and s["resolution"] != previous:
            ax.axvline(s["step"], color="gray", ls="--", lw=0.8)
            ax.text(s["step"], ax.get_ylim()[1], f" {s['resolution']}px", va="top", fontsize=8, color="gray")
        previous = s["resolution"]
    ax.set_xlabel("step")
    ax.set_ylabel("CLIP cosine similarity")
    ax.grid(alpha=0.3)
    if len(x):
        twin = ax.twinx()
        twin.plot(x, _smooth(loss, max(2, len(x) // 40)), color="tab:orange", lw=1, alpha=0.7)
        twin.set_ylabel("loss (smoothed)", color="tab:orange")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title[:90], fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
