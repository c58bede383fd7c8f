"""Writes the short music excerpts in tests/music and their ground truth (run it to regenerate them).

Each excerpt is written as MIDI (pretty_midi) with every note placed in seconds, so the truth is
exact: the beat times, the notated tempo, the chord of every bar and every note's onset. fluidsynth
plays the MIDI through the FluidR3_GM General MIDI soundfont (MIT licence) and the result is saved
as 22.05 kHz mono FLAC next to ``<name>.json``.

    pip install '.[excerpts]'; apt-get install fluidsynth fluid-soundfont-gm
    python tests/music/make_excerpts.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RATE = 22050
KICK, SNARE, CLAP, HAT, OPEN_HAT, PEDAL_HAT, RIDE = 36, 38, 39, 42, 46, 44, 51
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class Piece:
    """Notes in seconds plus the truth that goes with them."""

    def __init__(self, name: str, seconds: float, seed: int):
        import pretty_midi

        self.name, self.seconds = name, seconds
        self.rng = np.random.default_rng(seed)
        self.midi = pretty_midi.PrettyMIDI(initial_tempo=120)
        self.drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        self.parts: dict[int, object] = {}
        self.beats: list[float] = []
        self.downbeats: list[float] = []
        self.tempo_segments: list[dict] = []  # {"start": s, "bpm": notated tempo}
        self.chords: list[dict] = []  # {"start", "end", "root" (0 = C), "quality" ("maj"/"min")}
        self.drum_hits: list[dict] = []  # {"time", "note"}
        self.note_onsets: list[float] = []
        self.music_end = seconds

    def hit(self, t: float, note: int, velocity: int) -> None:
        import pretty_midi

        velocity = int(np.clip(velocity + self.rng.integers(-6, 7), 1, 127))
        self.drums.notes.append(pretty_midi.Note(velocity=velocity, pitch=note, start=t, end=t + 0.1))
        self.drum_hits.append({"time": round(t, 6), "note": note})

    def note(self, program: int, t: float, pitch: int, length: float, velocity: int) -> None:
        import pretty_midi

        if program not in self.parts:
            self.parts[program] = pretty_midi.Instrument(program=program)
        self.parts[program].notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=t, end=t + length))
        self.note_onsets.append(round(t, 6))

    def chord(self, program: int, t: float, root: int, quality: str, length: float, velocity: int,
              octave: int = 4) -> None:
        third = 4 if quality == "maj" else 3
        base = 12 * (octave + 1) + root
        for interval in (0, third, 7):
            self.note(program, t, base + interval, length, velocity)

    def render(self) -> dict:
        import soundfile

        self.midi.instruments.append(self.drums)
        self.midi.instruments.extend(self.parts.values())
        with tempfile.TemporaryDirectory() as tmp:
            mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
            self.midi.write(str(mid))
            subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(RATE), "-F", str(wav),
                            str(SOUNDFONT), str(mid)], check=True, capture_output=True)
            audio, rate = soundfile.read(wav, dtype="float64", always_2d=True)
        assert rate == RATE, rate
        mono = audio.mean(axis=1)[: int(self.seconds * RATE)]
        mono = np.pad(mono, (0, int(self.seconds * RATE) - len(mono)))
        mono *= 0.8 / max(np.abs(mono).max(), 1e-9)
        soundfile.write(HERE / f"{self.name}.flac", mono, RATE, subtype="PCM_16")
        heard = self.seconds  # the file is cut here: what would sound later is not in the truth either
        truth = {"file": f"{self.name}.flac", "seconds": self.seconds, "tempo": self.tempo_segments,
                 "beats": [round(b, 6) for b in self.beats if b < heard],
                 "downbeats": [round(b, 6) for b in self.downbeats if b < heard],
                 "chords": [{**c, "end": min(c["end"], heard)} for c in self.chords if c["start"] < heard],
                 "drum_hits": sorted((h for h in self.drum_hits if h["time"] < heard), key=lambda h: h["time"]),
                 "note_onsets": sorted(t for t in set(self.note_onsets) if t < heard),
                 "music_end": round(min(self.music_end, heard), 6)}
        (HERE / f"{self.name}.json").write_text(json.dumps(truth, indent=1) + "\n")
        return truth


def grid(start: float, bpm: float, n_beats: int) -> list[float]:
    return [start + k * 60.0 / bpm for k in range(n_beats)]


def bar_chords(piece: Piece, beats: list[float], progression, program: int, velocity: int,
               rhythm: str = "whole", bass: bool = True) -> None:
    """One chord per four-beat bar from ``beats`` (the beat after the bar closes its end)."""
    period = beats[1] - beats[0]
    for bar, (root, quality) in enumerate(progression):
        first = beats[4 * bar]
        end = beats[4 * bar + 4] if 4 * bar + 4 < len(beats) else first + 4 * period
        piece.chords.append({"start": round(first, 6), "end": round(end, 6), "root": root, "quality": quality})
        if rhythm == "whole":
            piece.chord(program, first, root, quality, end - first - 0.02, velocity)
        else:  # a chord on every beat
            for k in range(4):
                piece.chord(program, beats[4 * bar + k], root, quality, period * 0.9, velocity)
        if bass:
            for k, step in enumerate((0, 0, 7, 0)):  # root, root, fifth, root on the beats
                pitch = 36 + (root + step) % 12
                piece.note(33, beats[4 * bar + k], pitch, period * 0.9, 100)


def halftime_groove() -> Piece:
    """Hip-hop at 87 BPM: kick on 1 and the and of 2, snare on 2 and 4, eighth-note hats."""
    p = Piece("halftime_87", 11.0, seed=1)
    beats = grid(0.25, 87, 16)
    p.beats, p.downbeats = beats, beats[::4]
    p.tempo_segments = [{"start": 0.0, "bpm": 87.0}]
    half = 60 / 87 / 2
    for k, b in enumerate(beats):
        p.hit(b, HAT, 80)
        p.hit(b + half, HAT, 60)
        if k % 4 == 0:
            p.hit(b, KICK, 115)
        if k % 4 == 1:
            p.hit(b + half, KICK, 100)
        if k % 4 in (1, 3):
            p.hit(b, SNARE, 110)
    return p


def four_on_the_floor() -> Piece:
    """House at 125 BPM: kick on every beat, claps on 2 and 4, open hats on the offbeats; then silence."""
    p = Piece("house_125", 10.0, seed=2)
    beats = grid(0.2, 125, 16)  # 7.9 s of music, then two seconds of silence
    p.beats, p.downbeats = beats, beats[::4]
    p.tempo_segments = [{"start": 0.0, "bpm": 125.0}]
    half = 60 / 125 / 2
    for k, b in enumerate(beats):
        p.hit(b, KICK, 115)
        p.hit(b + half, OPEN_HAT, 70)
        if k % 2 == 1:
            p.hit(b, CLAP, 100)
    p.music_end = beats[-1] + 0.4
    return p


def breakbeat() -> Piece:
    """Drum and bass at 172 BPM: two-step kick (1, and of 3), snare on 2 and 4, eighth hats."""
    p = Piece("dnb_172", 9.0, seed=3)
    beats = grid(0.2, 172, 24)
    p.beats, p.downbeats = beats, beats[::4]
    p.tempo_segments = [{"start": 0.0, "bpm": 172.0}]
    half = 60 / 172 / 2
    for k, b in enumerate(beats):
        p.hit(b, HAT, 75)
        p.hit(b + half, HAT, 55)
        if k % 4 == 0:
            p.hit(b, KICK, 115)
        if k % 4 == 2:
            p.hit(b + half, KICK, 105)
        if k % 4 in (1, 3):
            p.hit(b, SNARE, 115)
    return p


def swing() -> Piece:
    """Jazz swing at 132 BPM: ride 'ding, ding-a ding' with 2:1 eighths, hi-hat foot on 2 and 4, walking bass."""
    p = Piece("swing_132", 10.0, seed=4)
    beats = grid(0.2, 132, 20)
    p.beats, p.downbeats = beats, beats[::4]
    p.tempo_segments = [{"start": 0.0, "bpm": 132.0}]
    period = 60 / 132
    walk = [36, 40, 43, 45, 41, 45, 48, 50, 43, 47, 50, 52, 36, 40, 43, 45, 41, 43, 45, 47]
    for k, b in enumerate(beats):
        p.hit(b, RIDE, 95 if k % 2 else 80)
        if k % 2 == 1:
            p.hit(b + 2 * period / 3, RIDE, 65)  # the swung "a"
            p.hit(b, PEDAL_HAT, 85)
        p.note(32, b, walk[k], period * 0.9, 105)  # acoustic bass
    return p


def tempo_change() -> Piece:
    """Rock beat at 90 BPM for 12 beats, then 140 BPM for 16 beats."""
    p = Piece("tempo_90_140", 15.5, seed=5)
    slow = grid(0.3, 90, 12)
    fast = grid(slow[-1] + 60 / 90, 140, 20)
    p.beats, p.downbeats = slow + fast, slow[::4] + fast[::4]
    p.tempo_segments = [{"start": 0.0, "bpm": 90.0}, {"start": round(fast[0], 6), "bpm": 140.0}]
    for part in (slow, fast):
        half = (part[1] - part[0]) / 2
        for k, b in enumerate(part):
            p.hit(b, HAT, 80)
            p.hit(b + half, HAT, 60)
            p.hit(b, KICK if k % 2 == 0 else SNARE, 112)
    return p


def drums_enter() -> Piece:
    """Four seconds of sustained strings (no beat), then drums and bass enter at 100 BPM."""
    p = Piece("drums_enter_100", 11.0, seed=6)
    intro = [(0, "maj"), (9, "min")]
    for k, (root, quality) in enumerate(intro):
        p.chords.append({"start": 2.0 * k, "end": 2.0 * k + 2.0, "root": root, "quality": quality})
        p.chord(48, 2.0 * k, root, quality, 2.0, 70)
    beats = grid(4.0, 100, 12)
    p.beats, p.downbeats = beats, beats[::4]
    p.tempo_segments = [{"start": 4.0, "bpm": 100.0}]
    half = 60 / 100 / 2
    for k, b in enumerate(beats):
        p.hit(b, HAT, 80)
        p.hit(b + half, HAT, 60)
        p.hit(b, KICK if k % 2 == 0 else SNARE, 112)
    bar_chords(p, beats, [(5, "maj"), (7, "maj"), (0, "maj")], 48, 75)
    return p


def ambient() -> Piece:
    """A beatless pad: slow overlapping chords with no regular attacks."""
    p = Piece("ambient", 10.0, seed=7)
    starts = [0.0, 2.9, 5.3, 7.9]
    changes = [(2, "min"), (10, "maj"), (7, "maj"), (9, "min")]
    for k, (t, (root, quality)) in enumerate(zip(starts, changes)):
        end = starts[k + 1] if k + 1 < len(starts) else 10.0
        p.chords.append({"start": t, "end": end, "root": root, "quality": quality})
        p.chord(89, t, root, quality, end - t + 0.6, 80)  # warm pad, overlapping the next
        p.note(89, t + 0.7, 36 + root, end - t, 60)
    return p


def piano_over_bass() -> Piece:
    """Piano chords on every beat over a root-fifth bass at 96 BPM: C, Am, F, G, Em, Dm."""
    p = Piece("chords_bass_96", 15.5, seed=8)
    beats = grid(0.2, 96, 24)
    p.beats, p.downbeats = beats, beats[::4]
    p.tempo_segments = [{"start": 0.0, "bpm": 96.0}]
    progression = [(0, "maj"), (9, "min"), (5, "maj"), (7, "maj"), (4, "min"), (2, "min")]
    bar_chords(p, beats, progression, 0, 85, rhythm="beats")
    return p


PIECES = (halftime_groove, four_on_the_floor, breakbeat, swing, tempo_change, drums_enter, ambient,
          piano_over_bass)


def main() -> int:
    total = 0
    for make in PIECES:
        truth = make().render()
        size = (HERE / truth["file"]).stat().st_size
        total += size
        print(f"{truth['file']}: {size / 1e3:.0f} kB, {len(truth['beats'])} beats, {len(truth['chords'])} chords")
    print(f"total {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
