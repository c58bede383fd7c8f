"""A picture of a track's features: what a person checks first when a render "does not react".

One lane per feature (normalised 0..1, filled like a level meter; the harmonic and percussive parts
on the whole mix's scale) with the beats drawn across
every lane, the frame numbers on top and seconds below, and chroma as a pitch-class image.
"""

from __future__ import annotations

import io

import numpy as np

from backend.audio.names import BANDS, CHROMA, FEATURE_INDEX

LANES = (*BANDS, "rms", "harmonic", "percussive", "onset", "beat_pulse", "beat_sin", "beat_cos", "tempo", "centroid")
_COLOURS = {"sub": "#7a0177", "bass": "#c51b8a", "low_mid": "#f768a1", "high_mid": "#fd8d3c",
            "treble": "#fecc5c", "rms": "#2c7fb8", "harmonic": "#41b6c4", "percussive": "#fc4e2a", "onset": "#e31a1c", "beat_pulse": "#238b45",
            "beat_sin": "#74c476", "beat_cos": "#a1d99b", "tempo": "#6a51a3", "centroid": "#8c6d31"}
_PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def plot_png(features, *, title: str | None = None) -> bytes:
    """The PNG bytes of the feature plot: every feature over time, beats marked, chroma as an image."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg; pyplot's global state is untouched

    t = features.times
    rate = features.fps.numerator / features.fps.denominator
    end = max(float(t[-1]) + 1 / rate if len(t) else 0.0, 1e-3)
    fig = Figure(figsize=(15, 9.5), dpi=110, layout="constrained")
    lanes_ax, chroma_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [12, 4.5]})

    for row, name in enumerate(LANES):
        base = len(LANES) - 1 - row  # first lane on top
        v = features.values[:, FEATURE_INDEX[name]]
        lanes_ax.fill_between(t, base, base + 0.9 * v, color=_COLOURS[name], alpha=0.55, linewidth=0)
        lanes_ax.plot(t, base + 0.9 * v, color=_COLOURS[name], linewidth=0.8)
        lanes_ax.axhline(base, color="#d9d9d9", linewidth=0.6)
    lanes_ax.set_yticks(np.arange(len(LANES)) + 0.45)
    lanes_ax.set_yticklabels([_lane_label(features, n) for n in reversed(LANES)], fontsize=9)
    lanes_ax.set_ylim(0, len(LANES))
    lanes_ax.tick_params(axis="y", length=0)
    for beat in features.beat_times:
        lanes_ax.axvline(beat, color="#525252", linewidth=0.6, alpha=0.35)
    if len(features.beat_times):
        lanes_ax.plot(features.beat_times, np.full(len(features.beat_times), len(LANES) - 0.02), "v",
                      color="#525252", markersize=4, clip_on=False, label="beats")
    _label_tempo_changes(lanes_ax, features, base=len(LANES) - 1 - LANES.index("tempo"))
    frames_axis = lanes_ax.secondary_xaxis(
        "top", functions=(lambda s: features.frame_start + s * rate, lambda f: (f - features.frame_start) / rate))
    frames_axis.set_xlabel(f"scene frame ({_fps_text(features.fps)} fps, frame {features.frame_start} = 0 s)",
                           fontsize=9)

    chroma = features.values[:, FEATURE_INDEX[CHROMA[0]]: FEATURE_INDEX[CHROMA[-1]] + 1].T  # (12, n)
    chroma_ax.imshow(chroma, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1,
                     extent=(-0.5 / rate, end - 0.5 / rate, -0.5, 11.5), interpolation="nearest")
    chroma_ax.set_yticks(range(12))
    chroma_ax.set_yticklabels(_PITCHES, fontsize=8)
    chroma_ax.set_ylabel("chroma", fontsize=9)
    chroma_ax.set_xlabel("time (s)", fontsize=9)
    chroma_ax.set_xlim(0, end)
    for beat in features.beat_times:
        chroma_ax.axvline(beat, color="white", linewidth=0.5, alpha=0.25)
    _label_chords(chroma_ax, features)

    heading = title or "audio features"
    tempo = f"{features.tempo:.1f} BPM, {len(features.beat_times)} beats" if features.tempo > 0 else "no beats found"
    fig.suptitle(f"{heading} — {features.duration:.2f} s, {features.n_frames} frames "
                 f"({features.frame_start}–{features.frame_start + features.n_frames - 1}), {tempo}",
                 fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _lane_label(features, name: str) -> str:
    """The feature's name and what its raw values span, so a flat lane can be told from a quiet one."""
    raw = features.raw[:, FEATURE_INDEX[name]]
    if name in (*BANDS, "rms", "harmonic", "percussive"):
        loud = raw[raw > -119]
        span = f"{np.percentile(loud, 5):.0f}..{np.percentile(loud, 97):.0f} dB" if len(loud) else "silent"
    elif name == "tempo":
        played = raw[raw > 0]
        low, high = (np.percentile(played, (5, 95)) if len(played) else (0, 0))
        span = "—" if not len(played) else f"{low:.0f} BPM" if high - low < 2 else f"{low:.0f}–{high:.0f} BPM"
    elif name == "centroid":
        voiced = raw[raw > 0]
        span = f"{np.median(voiced):.0f} Hz" if len(voiced) else "—"
    else:
        return name
    return f"{name}\n{span}"


def _label_tempo_changes(ax, features, *, base: int) -> None:
    """The local BPM written on the tempo lane at the first beat and wherever it settles 3 % away."""
    tempo = features.raw[:, FEATURE_INDEX["tempo"]]
    beats = features.beat_times
    at_beats = np.interp(beats, features.times, tempo) if len(features.times) else np.zeros(0)
    shown = 0.0
    for k, (time, bpm) in enumerate(zip(beats, at_beats)):
        settled = abs(at_beats[min(k + 2, len(beats) - 1)] - bpm) < 0.015 * bpm  # not in the middle of a glide
        if bpm > 0 and settled and abs(bpm - shown) >= 0.03 * max(shown, 1.0):
            ax.text(time, base + 0.5, f"{bpm:.0f} BPM", fontsize=7, color=_COLOURS["tempo"], va="center")
            shown = bpm


def _label_chords(ax, features) -> None:
    """The estimated chord (e.g. Am) written over the chroma image wherever it changes."""
    from backend.audio.features import chord_roots

    roots = chord_roots(features)
    major = features.raw[:, FEATURE_INDEX["chord_major"]] > 0
    last = None
    for time, root, is_major in zip(features.times, roots, major):
        chord = None if root < 0 else _PITCHES[root] + ("" if is_major else "m")
        if chord != last and chord is not None:
            ax.text(time, 10.8, chord, fontsize=7, color="black", va="center",
                    bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1})
        last = chord


def _fps_text(fps) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator / fps.denominator:.3f}"
