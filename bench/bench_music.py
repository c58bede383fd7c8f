"""Musical accuracy on the rendered General MIDI excerpts in tests/music, against their truth.

    python -m bench.bench_music [--out bench/results/music.json]

Per piece: beat F-measure (mir_eval, 70 ms window) of ours and of librosa's default ``beat_track``,
our global tempo vs the notated one (within 4 %) and the local tempo at every notated beat (all but
the four after a tempo change; within 4 %), chord-root accuracy per bar (the most common
estimated root over the bar's middle half), and whether the bar's three strongest chroma bins are its
triad. The 5-minute analysis time is bench_audio's job.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from bench.common import cpu_name

ROOT = Path(__file__).resolve().parent.parent
MUSIC = ROOT / "tests" / "music"
RESULTS = ROOT / "bench" / "results"


def load_truth(name: str) -> dict:
    return json.loads((MUSIC / f"{name}.json").read_text())


def piece_names() -> list[str]:
    return sorted(p.stem for p in MUSIC.glob("*.json"))


def beat_f(reference, estimated) -> float:
    import mir_eval

    reference, estimated = np.asarray(reference, float), np.asarray(estimated, float)
    if len(reference) == 0:
        return float(len(estimated) == 0)
    return float(mir_eval.beat.f_measure(reference, estimated, f_measure_threshold=0.07))


def librosa_default_beats(path: Path) -> np.ndarray:
    import librosa

    y, sr = librosa.load(path, sr=22050, mono=True)
    _, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    return beats


def chord_root_accuracy(features, truth: dict, *, strongest_bin: bool = False) -> float | None:
    """Share of bars whose most common estimated root (frames in the bar's middle half) is the true root.

    ``strongest_bin``: take the strongest chroma bin as the root instead (what a style saw before).
    """
    from backend.audio.features import chord_roots
    from backend.audio.names import CHROMA, FEATURE_INDEX

    if not truth["chords"]:
        return None
    if strongest_bin:
        chroma = features.raw[:, FEATURE_INDEX[CHROMA[0]]: FEATURE_INDEX[CHROMA[-1]] + 1]
        roots = np.where(chroma.max(axis=1) > 0, chroma.argmax(axis=1), -1)
    else:
        roots = chord_roots(features)
    hits = []
    for chord in truth["chords"]:
        quarter = (chord["end"] - chord["start"]) / 4
        inside = (features.times >= chord["start"] + quarter) & (features.times < chord["end"] - quarter)
        values = roots[inside]
        values = values[values >= 0]
        hits.append(len(values) > 0 and np.bincount(values, minlength=12).argmax() == chord["root"])
    return float(np.mean(hits))


def tempo_curve_accuracy(features, truth: dict) -> float:
    """Share of the notated beats (all but the four after each tempo change) at which the local tempo
    feature is within 4 % of the notated tempo."""
    from backend.audio.names import FEATURE_INDEX

    segments = truth["tempo"]
    local = np.interp(truth["beats"], features.times, features.raw[:, FEATURE_INDEX["tempo"]])
    hits = []
    for beat, bpm in zip(truth["beats"], local):
        current = [s for s in segments if s["start"] <= beat + 1e-6][-1]
        if current is not segments[0] and beat < current["start"] + 4 * 60 / current["bpm"]:
            continue  # settling into the new tempo
        hits.append(abs(bpm - current["bpm"]) <= 0.04 * current["bpm"])
    return float(np.mean(hits))


def top_three_are_chord_tones(features, truth: dict) -> float | None:
    """Share of bars whose three strongest chroma bins (mean over the bar's middle half) are the
    chord's root, third and fifth: no passing or overtone pitch among them."""
    from backend.audio.names import CHROMA, FEATURE_INDEX

    if not truth["chords"]:
        return None
    chroma = features.values[:, FEATURE_INDEX[CHROMA[0]]: FEATURE_INDEX[CHROMA[-1]] + 1]
    hits = []
    for chord in truth["chords"]:
        quarter = (chord["end"] - chord["start"]) / 4
        inside = (features.times >= chord["start"] + quarter) & (features.times < chord["end"] - quarter)
        third = 4 if chord["quality"] == "maj" else 3
        tones = {chord["root"] % 12, (chord["root"] + third) % 12, (chord["root"] + 7) % 12}
        hits.append(set(np.argsort(chroma[inside].mean(axis=0))[-3:].tolist()) == tones)
    return float(np.mean(hits))


def measure(name: str) -> dict:
    from backend.audio.features import AudioConfig, analyze

    truth = load_truth(name)
    path = MUSIC / truth["file"]
    features = analyze(path, config=AudioConfig(fps=30))
    notated = [s["bpm"] for s in truth["tempo"]]
    row = {"piece": name, "notated_bpm": notated, "tempo": round(features.tempo, 2),
           "tempo_ok": bool(len(notated) == 1 and abs(features.tempo - notated[0]) <= 0.04 * notated[0]),
           "tempo_curve_ok": round(tempo_curve_accuracy(features, truth), 3) if truth["tempo"] else None,
           "beat_f": round(beat_f(truth["beats"], features.beat_times), 3),
           "librosa_beat_f": round(beat_f(truth["beats"], librosa_default_beats(path)), 3)}
    accuracy = chord_root_accuracy(features, truth)
    if accuracy is not None:
        row["chord_root_accuracy"] = round(accuracy, 3)
        row["strongest_chroma_bin_root_accuracy"] = round(chord_root_accuracy(features, truth, strongest_bin=True), 3)
        row["top_three_chroma_are_chord_tones"] = round(top_three_are_chord_tones(features, truth), 3)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "music.json")
    args = parser.parse_args(argv)
    rows = [measure(name) for name in piece_names()]
    print("| piece | notated BPM | our tempo (local tempo right at the beats) | beat F (ours) | beat F (librosa default) | chord root per bar "
          "(ours / strongest chroma bin) | bars whose top 3 chroma bins are the triad |")
    print("|---|---|---:|---:|---:|---|---:|")
    for row in rows:
        chords = (f"{row['chord_root_accuracy']:.0%} / {row['strongest_chroma_bin_root_accuracy']:.0%}"
                  if "chord_root_accuracy" in row else "—")
        triads = f"{row['top_three_chroma_are_chord_tones']:.0%}" if "chord_root_accuracy" in row else "—"
        notated = " → ".join(f"{b:g}" for b in row["notated_bpm"]) or "none"
        curve = f" ({row['tempo_curve_ok']:.0%})" if row["tempo_curve_ok"] is not None else ""
        print(f"| {row['piece']} | {notated} | {row['tempo']:g}{' ✓' if row['tempo_ok'] else ''}{curve} | "
              f"{row['beat_f']:.2f} | {row['librosa_beat_f']:.2f} | {chords} | {triads} |")
    result = {"machine": {"cpu": cpu_name(), "python": platform.python_version()},
              "command": "python -m bench.bench_music", "pieces": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
