"""A style's architecture (:class:`CPPNConfig`): saved inside every style file, rebuilds the network.

Plain Python (no torch), so training settings and the command line can use it without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from backend.audio.names import CHROMA, FEATURE_INDEX, FEATURE_NAMES
from backend.errors import InvalidInput

DEFAULT_AUDIO_INPUTS = ("sub", "bass", "low_mid", "high_mid", "treble", "rms", "onset", "beat_pulse",
                        *CHROMA, "centroid", "chord_sin", "chord_cos", "chord_major", "percussive", "harmonic")
MAX_HIDDEN, MAX_DEPTH = 2048, 32  # far past any useful CPPN; larger is a typo (or a hostile header)


@dataclass
class CPPNConfig:
    """Architecture of a style; saved inside every style file and used to rebuild the model."""

    hidden: int = 128  # width of every sine layer
    depth: int = 4  # number of sine layers (the first reads the inputs)
    first_omega: float = 1.0  # first-layer coordinate weights ~ U(-w, w): spatial frequency in rad/unit
    hidden_omega: float = 1.0  # hidden weights ~ U(-s, s) * sqrt(6/hidden) (SIREN's bound at 1.0)
    time_omega: float = 1.0  # time-phase weights ~ U(-w, w): how far the slow drift moves the pattern
    time_periods: tuple[float, ...] = (29.0, 71.0)  # seconds per cycle of each slow time phase
    audio_inputs: tuple[str, ...] = DEFAULT_AUDIO_INPUTS  # features fed to the network, in order
    audio_scale: float = 1.0  # std (radians) of the fixed audio projection per unit of feature (x MORPH_EMPHASIS)
    out_channels: int = 3  # 3 = RGB, 4 = RGBA
    seed: int = 0  # seeds the initial weights and the fixed audio projection

    def __post_init__(self):
        for name in ("hidden", "depth", "out_channels", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"{name} must be a whole number, got {value!r}")
        for name in ("first_omega", "hidden_omega", "time_omega", "audio_scale"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise InvalidInput(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.time_periods, (list, tuple)) or not all(_is_number(p) for p in self.time_periods):
            raise InvalidInput(f"time periods must be a list of seconds, got {self.time_periods!r}")
        if not isinstance(self.audio_inputs, (list, tuple)) or not all(isinstance(n, str) for n in self.audio_inputs):
            raise InvalidInput(f"audio inputs must be a list of feature names, got {self.audio_inputs!r}")
        self.time_periods = tuple(float(p) for p in self.time_periods)
        self.audio_inputs = tuple(self.audio_inputs)
        unknown = [n for n in self.audio_inputs if n not in FEATURE_INDEX]
        if unknown:
            raise InvalidInput(f"unknown audio inputs {unknown}; known: {', '.join(FEATURE_NAMES)}")
        if not (1 <= self.hidden <= MAX_HIDDEN and 1 <= self.depth <= MAX_DEPTH):
            raise InvalidInput(f"hidden must be 1-{MAX_HIDDEN} and depth 1-{MAX_DEPTH}, "
                               f"got {self.hidden} and {self.depth}")
        if self.out_channels not in (3, 4):
            raise InvalidInput(f"out_channels must be 3 or 4, got {self.out_channels}")
        if not self.time_periods or any(not 0 < p < math.inf for p in self.time_periods):
            raise InvalidInput(f"time periods must be > 0 seconds, got {self.time_periods}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_periods"] = list(self.time_periods)
        d["audio_inputs"] = list(self.audio_inputs)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "CPPNConfig":
        if not isinstance(data, dict):
            raise InvalidInput(f"a style config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"style config has unknown fields {unknown}; it may need a newer audio-cppn")
        return cls(**data)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
