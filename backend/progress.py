"""How long-running library functions report progress and learn that they should stop.

Library code never prints. It calls ``report(callback, Progress(...))``; the CLI turns the
events into a progress bar, a server into job events. A callback that returns ``False``
cancels the work: ``report`` raises :class:`~backend.errors.Cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from backend.errors import Cancelled


@dataclass
class Progress:
    stage: str  # what is running: "analyse", "render", "load", "train", "save", "score"
    done: int  # units finished so far (frames, steps, blocks)
    total: int  # units in all; 0 when unknown
    message: str = ""  # one human line, e.g. "frame 120" or "similarity 0.231"
    info: dict[str, Any] = field(default_factory=dict)  # stage-specific numbers (loss, fps, ...)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressCallback = Callable[[Progress], Optional[bool]]


def report(callback: ProgressCallback | None, event: Progress) -> None:
    """Send ``event`` to ``callback``; raise Cancelled if it answers False."""
    if callback is not None and callback(event) is False:
        raise Cancelled(f"{event.stage} cancelled at {event.done}/{event.total}")
