"""The bundled demo track: 17 s of synthesised music at 120 BPM whose every hit time is known.

Eight bars of Am - F - C - G: a quiet pad-only intro, hats joining, four bars of full groove
(four-on-the-floor kick, snare on 2 and 4, eighth-note hats, a bass line on the chord roots),
a one-bar breakdown with a snare fill, the groove again and a final hit ringing out. Chroma drifts
with the chords, sub and bass alternate with the bass notes, silence and music both appear.

Nothing is downloaded or stored in git: :func:`demo_track_path` synthesises it deterministically
on first use into the project's ignored ``.cache/demo/`` folder (atomically) and reuses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal

from backend.atomic import atomic_path
from backend.paths import cache_dir

TEMPO = 120.0
BEAT = 60.0 / TEMPO  # seconds
BAR = 4 * BEAT
DURATION = 17.0  # seconds: eight bars and the last hit's tail
VERSION = 1  # bump when the music changes, so cached files are rebuilt
CHORDS = (("Am", 33, (57, 60, 64)), ("F", 29, (57, 60, 65)), ("C", 36, (55, 60, 64)), ("G", 31, (55, 59, 62)))
# (name, bass MIDI note, pad MIDI notes); one chord per bar, the progression played twice.
SECTIONS = (("intro", 0.0, 2 * BAR), ("groove", 2 * BAR, 6 * BAR), ("breakdown", 6 * BAR, 7 * BAR),
            ("groove", 7 * BAR, 8 * BAR), ("ending", 8 * BAR, DURATION))


@dataclass(frozen=True)
class DemoScore:
    tempo: float  # BPM
    duration: float  # seconds
    sample_rate: int
    kick_times: tuple[float, ...]  # seconds of every kick onset
    snare_times: tuple[float, ...]
    hat_times: tuple[float, ...]
    bass_times: tuple[float, ...]  # bass note onsets
    chords: tuple[tuple[float, str], ...]  # (start seconds, chord name)
    sections: tuple[tuple[str, float, float], ...]  # (name, start, end) seconds

    @property
    def drum_times(self) -> np.ndarray:
        """Every kick, snare and hat onset, sorted and de-duplicated."""
        return np.unique(np.round(np.r_[self.kick_times, self.snare_times, self.hat_times], 6))

    @property
    def beat_times(self) -> np.ndarray:
        """The beat grid of the bars with drums (every kick lands on one)."""
        return np.asarray(self.kick_times)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _score(sample_rate: int) -> DemoScore:
    kicks, snares, hats, bass = [], [], [], []
    for bar in range(8):
        t0 = bar * BAR
        groove = 2 <= bar <= 5 or bar == 7
        if groove:
            kicks += [t0 + k * BEAT for k in range(4)]
            snares += [t0 + BEAT, t0 + 3 * BEAT]
        if groove or bar == 1:
            hats += [t0 + k * BEAT / 2 for k in range(8)]
        if bar == 6:  # breakdown: a snare fill on the last beat leads back in
            snares += [t0 + 3 * BEAT + k * BEAT / 4 for k in range(4)]
        if bar >= 2 and bar != 6:
            bass += [t0 + k * BEAT / 2 for k in (0, 2, 3, 4, 6, 7)]
        elif bar == 6:
            bass += [t0]
    kicks.append(8 * BAR)  # the final hit
    chords = tuple((bar * BAR, CHORDS[bar % 4][0]) for bar in range(8))
    return DemoScore(TEMPO, DURATION, sample_rate, tuple(kicks), tuple(snares), tuple(hats), tuple(bass),
                     chords, SECTIONS)


def synthesize_demo(sample_rate: int = 44100) -> tuple[np.ndarray, DemoScore]:
    """The demo track as float32 stereo (n, 2) at ``sample_rate``, and its score."""
    score = _score(sample_rate)
    sr = sample_rate
    rng = np.random.default_rng(2024)
    n = int(round(DURATION * sr))
    mix = np.zeros((n, 2), np.float64)

    def add(signal: np.ndarray, start: float, gain: float, pan: float = 0.0) -> None:
        i = int(round(start * sr))
        part = signal[: max(0, n - i)] * gain
        mix[i: i + len(part), 0] += part * np.sqrt(0.5 * (1 - pan))
        mix[i: i + len(part), 1] += part * np.sqrt(0.5 * (1 + pan))

    t = np.arange(int(0.6 * sr)) / sr
    kick = np.sin(2 * np.pi * (45 * t + 0.04 * 110 * (1 - np.exp(-t / 0.04)))) * np.exp(-t / 0.22)
    kick[: int(0.003 * sr)] += rng.uniform(-0.6, 0.6, int(0.003 * sr))  # beater click
    noise = rng.uniform(-1, 1, len(t))
    snare_noise = scipy.signal.sosfilt(scipy.signal.butter(2, [1200, 7000], "bandpass", fs=sr, output="sos"), noise)
    snare = 1.6 * snare_noise * np.exp(-t / 0.09) + 0.5 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
    hat = scipy.signal.sosfilt(scipy.signal.butter(4, 7500, "highpass", fs=sr, output="sos"),
                               rng.uniform(-1, 1, len(t))) * np.exp(-t / 0.025)
    for k in score.kick_times:
        add(kick, k, 0.9 if k < 8 * BAR else 1.0)
    for i, s in enumerate(score.snare_times):
        add(snare, s, 0.45 if s < 6 * BAR or s >= 7 * BAR else 0.2 + 0.07 * (i % 4))
    for i, h in enumerate(score.hat_times):
        accent = 0.35 if i % 2 else 0.22  # offbeats a little louder
        add(hat, h, accent * (0.5 if h < 2 * BAR else 1.0), pan=0.4 if i % 2 else -0.3)

    for start in score.bass_times:
        bar = int(start // BAR)
        offbeat = round((start % BAR) / (BEAT / 2)) in (3, 7)
        freq = _midi_hz(CHORDS[bar % 4][1] + (12 if offbeat else 0))  # root, with octave jumps
        length = BAR if bar == 6 else BEAT / 2 * 0.9
        tb = np.arange(int(length * sr)) / sr
        tone = np.tanh(1.5 * np.sin(2 * np.pi * freq * tb)) * np.minimum(1, tb / 0.005)
        tone *= np.exp(-tb / (0.8 if bar == 6 else 0.25)) * np.minimum(1, (length - tb) / 0.01)
        add(tone, start, 0.45)

    for bar in range(8):
        _, _, notes = CHORDS[bar % 4]
        start = bar * BAR
        tp = np.arange(int(BAR * 1.15 * sr)) / sr  # overlaps the next chord slightly
        voice = np.zeros(len(tp))
        for note in notes:  # soft saw-like tones; no detuned copies, whose beating would pump the chroma
            f = _midi_hz(note)
            voice += sum(np.sin(2 * np.pi * k * f * tp + k) / k**2 for k in range(1, 5))
        envelope = np.minimum(1, tp / 0.35) * np.minimum(1, np.maximum(0, BAR * 1.15 - tp) / 0.3)
        pad_gain = 0.02 + 0.05 * (bar >= 1) + 0.02 * (bar == 6)
        if bar == 0:
            envelope *= np.minimum(1, tp / 1.5)  # the track fades in from silence
        add(voice * envelope, start, pad_gain, pan=-0.2 if bar % 2 else 0.2)

    mix *= 0.89 / np.max(np.abs(mix))  # peak at -1 dBFS
    return mix.astype(np.float32), score


def demo_track_path(folder: str | os.PathLike | None = None) -> Path:
    """The demo track's wav file, synthesised on first use (into the cache's ``demo/`` by default)."""
    import soundfile as sf

    folder = Path(folder) if folder is not None else cache_dir("demo")
    path = folder / f"demo_120bpm_v{VERSION}.wav"
    if path.is_file() and path.stat().st_size > 0:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    y, score = synthesize_demo(44100)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), y, score.sample_rate, format="WAV", subtype="PCM_16")
    return path
