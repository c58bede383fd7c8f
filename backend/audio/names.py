"""The canonical audio feature vector (29 values): names and order shared by analysis, model and renderer.

Kept free of heavy imports so the model can use it without loading librosa.
"""

BANDS = ("sub", "bass", "low_mid", "high_mid", "treble")  # band energies, dB before normalisation
BAND_EDGES_HZ = {"sub": (20, 60), "bass": (60, 250), "low_mid": (250, 1000),
                 "high_mid": (1000, 4000), "treble": (4000, 16000)}
CHROMA = tuple(f"chroma_{p}" for p in ("c", "cs", "d", "ds", "e", "f", "fs", "g", "gs", "a", "as", "b"))

FEATURE_NAMES: tuple[str, ...] = (
    *BANDS,
    "rms",  # loudness
    "onset",  # spectral flux, peak within each frame's window
    "beat_pulse",  # 1 on a beat, decaying until the next
    "beat_sin", "beat_cos",  # position within the beat, 0.5 + 0.5*sin/cos(2*pi*phase)
    "tempo",  # local tempo, 60..180 BPM mapped to 0..1
    *CHROMA,  # pitch classes C..B
    "centroid",  # spectral centroid (brightness), log-frequency
    # Added in analysis version 2, at the end: styles address features by name, older ones ignore these.
    "chord_sin", "chord_cos",  # the chord's root on the circle of fifths, 0.5 + 0.5*sin/cos; 0 without a chord
    "chord_major",  # 1 for a major chord, 0 for minor or none
    # Added in analysis version 3: the drums apart from the harmony (harmonic/percussive separation).
    "percussive",  # loudness of the percussive part (hits, drums), dB normalised like the bands
    "harmonic",  # loudness of the harmonic part (sustained notes, chords)
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
