"""How strongly the music moves the picture: a render setting, not part of a style.

Plain Python and numpy (no torch), so the command line can build its options without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backend.errors import InvalidInput
from backend.audio.names import FEATURE_INDEX, FEATURE_NAMES

MAX_AMOUNT = 100.0  # any effect or gain beyond this is a typo, not a look: sin() of it is noise


@dataclass
class Reactivity:
    """How strongly the music moves the picture; every value is >= 0 and at most MAX_AMOUNT."""

    amount: float = 1.0  # global multiplier of every audio effect (0 = ignore the music)
    morph: float = 1.0  # audio features pushing the pattern through the network
    swell: float = 0.35  # magnification per unit of bass
    pulse: float = 0.6  # radial push (radians) per unit of beat pulse
    flash: float = 0.35  # blend towards white per unit of onset
    gains: dict[str, float] = field(default_factory=dict)  # per-feature multipliers, e.g. {"bass": 1.5}

    def __post_init__(self):
        unknown = [n for n in self.gains if n not in FEATURE_INDEX]
        if unknown:
            raise InvalidInput(f"unknown feature in gains: {unknown}; known: {', '.join(FEATURE_NAMES)}")
        for name, value in self.gains.items():
            _check_amount(f"gain for {name}", value)
        for name in ("amount", "morph", "swell", "pulse", "flash"):
            _check_amount(f"reactivity {name}", getattr(self, name))

    def gain_vector(self) -> np.ndarray:
        """Per-feature multipliers in canonical order, global amount included, float32 [F]."""
        g = np.full(len(FEATURE_NAMES), float(self.amount), np.float32)
        for name, value in self.gains.items():
            g[FEATURE_INDEX[name]] *= float(value)
        return g


def _check_amount(what: str, value) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidInput(f"{what} must be a number from 0 to {MAX_AMOUNT:g}, got {value}")
