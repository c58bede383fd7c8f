"""Text prompts with weights: ``"ink in water:1, gold leaf:0.5"``.

Rules (the same for the prompt and the negative prompt):

* text without any ``:`` is one prompt of weight 1, commas included ("a city at night, rain");
* once a ``:`` appears, the text is a comma-separated list of ``TEXT:WEIGHT`` parts; a part
  without ``:`` gets weight 1;
* weights are numbers > 0 (to push away from something, use the negative prompt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.errors import InvalidInput

MAX_PROMPTS = 16  # each costs a CLIP text embedding and a column in the loss


@dataclass(frozen=True)
class WeightedPrompt:
    text: str  # what CLIP reads
    weight: float  # relative importance, > 0

    def to_dict(self) -> dict:
        return {"text": self.text, "weight": self.weight}


def parse_prompts(text: str | None, *, what: str = "prompt", allow_empty: bool = False) -> list[WeightedPrompt]:
    """Parse ``text`` into weighted prompts; ``what`` names it in error messages."""
    text = (text or "").strip()
    if not text:
        if allow_empty:
            return []
        raise InvalidInput(f"{what} is empty; expected text such as \"ink in water\" or "
                           "\"ink in water:1, gold leaf:0.5\"")
    if ":" not in text:
        return [WeightedPrompt(" ".join(text.split()), 1.0)]
    prompts = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise InvalidInput(f"{what} {text!r} has an empty part between commas")
        body, sep, weight_text = part.rpartition(":")
        if not sep:
            body, weight = part, 1.0
        else:
            weight = _weight(weight_text.strip(), part, what)
        body = " ".join(body.split())
        if not body:
            raise InvalidInput(f"{what} part {part!r} has a weight but no text; expected TEXT:WEIGHT")
        prompts.append(WeightedPrompt(body, weight))
    if len(prompts) > MAX_PROMPTS:
        raise InvalidInput(f"{what} has {len(prompts)} parts; at most {MAX_PROMPTS} are allowed")
    return prompts


def _weight(text: str, part: str, what: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise InvalidInput(f"weight {text!r} in {what} part {part!r} is not a number; "
                           "expected TEXT:WEIGHT such as 'gold leaf:0.5'") from None
    if not math.isfinite(weight) or weight <= 0:
        raise InvalidInput(f"weight in {what} part {part!r} must be a finite number > 0, got {text}"
                           + ("; put things to avoid in the negative prompt" if weight < 0 else ""))
    return weight


def normalised_weights(prompts: list[WeightedPrompt]) -> list[float]:
    """Weights scaled to sum to 1, in the prompts' order."""
    total = sum(p.weight for p in prompts)
    return [p.weight / total for p in prompts]


def describe(prompts: list[WeightedPrompt]) -> str:
    """One line for logs and titles, e.g. ``ink in water (0.67) + gold leaf (0.33)``."""
    if len(prompts) == 1:
        return prompts[0].text
    return " + ".join(f"{p.text} ({w:.2f})" for p, w in zip(prompts, normalised_weights(prompts)))
