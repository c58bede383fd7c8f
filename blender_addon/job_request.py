"""The service's request bodies from scene settings, and its job records as status lines (no bpy).

``props.py`` copies the Scene's settings into :class:`RenderSettings` / :class:`TrainSettings`;
everything that decides what is sent (exact fps, size from resolution x percentage, frame range,
which audio) lives here, where plain-Python tests reach it.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .render_manifest import MAX_BLENDER_FPS

REACTIVITY_FIELDS = ("amount", "morph", "swell", "pulse", "flash")
FINISHED_STATES = ("done", "failed", "cancelled")  # "interrupted" resumes when the service starts again


class SettingsError(ValueError):
    """Settings that cannot make a request; the message says which and how to fix it."""


def exact_fps(fps: int, fps_base: float) -> Fraction:
    """Blender's ``fps / fps_base`` as the exact rate it stands for: (30, 1.001) -> 30000/1001.

    ``fps_base`` is a float32 in Blender (1.001 reads back as 1.00100005); the nearest fraction with
    a denominator up to 1000 is what the user picked (1001/1000, 24/25): such fractions lie at least
    1e-6 apart, far more than float32's rounding.
    """
    if fps <= 0 or not fps_base > 0:
        raise SettingsError(f"the scene's frame rate {fps}/{fps_base} is not positive; set it in Output Properties")
    rate = Fraction(int(fps)) / Fraction(fps_base).limit_denominator(1000)
    if rate > MAX_BLENDER_FPS:
        raise SettingsError(f"the scene's frame rate {float(rate):g} is too high")
    return rate


def fps_text(rate: Fraction) -> str:
    """``"30"`` or ``"30000/1001"``: what the service parses exactly."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def output_size(resolution_x: int, resolution_y: int, percentage: int) -> tuple[int, int]:
    """The size Blender renders at: resolution x percentage / 100, truncated as Blender does."""
    width, height = resolution_x * percentage // 100, resolution_y * percentage // 100
    if width < 1 or height < 1:
        raise SettingsError(f"the render size {width}x{height} is empty; raise the resolution or its percentage")
    return width, height


@dataclass
class RenderSettings:
    """Everything a render request needs, as plain values (paths already absolute)."""

    audio: str  # absolute audio path ("" = none found)
    audio_start: int  # scene frame where the audio's first instant plays
    style: str
    output: str  # absolute render folder
    fps: int = 24
    fps_base: float = 1.0
    resolution_x: int = 1920
    resolution_y: int = 1080
    percentage: int = 100
    frame_range: tuple[int, int] | None = None  # scene frames to render; None = the whole track
    file_format: str = "exr"  # exr | png
    reactivity: dict = field(default_factory=dict)  # amount, morph, swell, pulse, flash
    gains: dict = field(default_factory=dict)  # per-feature multipliers; 1.0 entries are left out
    overwrite: bool = False
    audio_frames: int | None = None  # frames the track covers per the sound strip (a WAV's header wins)


def wav_frame_count(path: str, rate: Fraction) -> int | None:
    """Frames a WAV file covers at ``rate``, ``ceil(duration * fps)`` as the backend counts; None when
    the file is not a WAV the standard library reads (the service then checks the range itself)."""
    try:
        with wave.open(path, "rb") as f:
            samples, sample_rate = f.getnframes(), f.getframerate()
    except (wave.Error, OSError, EOFError):
        return None
    return -((-samples * rate.numerator) // (sample_rate * rate.denominator))


def render_request(s: RenderSettings) -> dict:
    """The body of ``POST /jobs`` for a render; raises :class:`SettingsError` with what to fix."""
    if not s.audio:
        raise SettingsError("no audio: the scene has no sound strip; add one or pick a file")
    if not os.path.isabs(s.audio) or not Path(s.audio).is_file():
        raise SettingsError(f"the audio file {s.audio} does not exist; pick another")
    if not s.style:
        raise SettingsError("no style chosen; pick one or train one")
    if not s.output or not os.path.isabs(s.output):
        raise SettingsError("the output folder must be an absolute path (save the .blend first for a // path)")
    width, height = output_size(s.resolution_x, s.resolution_y, s.percentage)
    rate = exact_fps(s.fps, s.fps_base)
    body = {"kind": "render", "audio": s.audio, "style": s.style, "output": s.output,
            "width": width, "height": height, "fps": fps_text(rate),
            "frame_start": int(s.audio_start), "format": s.file_format.lower(), "overwrite": bool(s.overwrite)}
    if s.frame_range is not None:
        first, last = s.frame_range
        first = max(first, s.audio_start)  # nothing to render before the music starts
        if last < first:
            raise SettingsError(f"the scene's frame range ends ({last}) before the audio starts "
                                f"({s.audio_start}); widen the range or render the whole track")
        count = wav_frame_count(s.audio, rate) or s.audio_frames
        if count is not None:
            last = min(last, s.audio_start + count - 1)  # nor after it ends
            if last < first:
                raise SettingsError(f"the scene's frame range starts ({first}) after the audio ends "
                                    f"({s.audio_start + count - 1}); move the range or the sound strip")
        body["frames"] = [int(first), int(last)]
    # The service's fields are flat: "reactivity" is the overall amount, then morph, swell, pulse, flash.
    for name, value in s.reactivity.items():
        if name in REACTIVITY_FIELDS:
            body["reactivity" if name == "amount" else name] = float(value)
    gains = {k: float(v) for k, v in s.gains.items() if float(v) != 1.0}
    if gains:
        body["gains"] = gains
    return body


@dataclass
class TrainSettings:
    prompt: str
    name: str
    negative: str = ""
    steps: int = 800
    resolutions: str = "256,512"
    seed: int = 0
    extra: dict = field(default_factory=dict)  # any other TrainConfig field (tests: the tiny CLIP model)


def train_request(s: TrainSettings) -> dict:
    if not s.prompt.strip():
        raise SettingsError("type a prompt: what the style should look like")
    name = s.name.strip() or style_name_from_prompt(s.prompt)
    try:
        resolutions = [int(r) for r in s.resolutions.replace(" ", "").split(",") if r]
    except ValueError:
        raise SettingsError(f"resolutions must be sizes like 256,512, got {s.resolutions!r}") from None
    return {"kind": "train", "prompt": s.prompt.strip(), "name": name, "negative": s.negative.strip(),
            "steps": int(s.steps), "resolutions": resolutions, "seed": int(s.seed), **s.extra}


def style_name_from_prompt(prompt: str) -> str:
    """A file-safe style name from the prompt's first words: "Neon jellyfish, deep sea" -> neon_jellyfish_deep."""
    words = "".join(c.lower() if c.isalnum() else " " for c in prompt).split()
    return "_".join(words[:3]) or "style"


@dataclass(frozen=True)
class JobStatus:
    """A job record from the service, reduced to what the sidebar shows."""

    id: str
    kind: str
    state: str
    done: int = 0
    total: int = 0
    fraction: float = 0.0
    stage: str = ""
    message: str = ""
    rate: float | None = None
    eta_s: float | None = None
    error: str = ""
    fix: str = ""
    result: dict = field(default_factory=dict)
    request: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def progress_text(self) -> str:
        """"Frame 12/300 · 4.1 frames/s · ETA 1:10" (or steps for a training)."""
        unit = "Step" if self.kind == "train" else "Frame"
        parts = [f"{unit} {self.done}/{self.total}" if self.total else (self.stage or self.state).capitalize()]
        if self.rate:
            parts.append(f"{self.rate:.3g} {'steps' if self.kind == 'train' else 'frames'}/s")
        if self.eta_s is not None and self.state == "running":
            parts.append(f"ETA {format_duration(self.eta_s)}")
        return " · ".join(parts)

    def error_text(self) -> str:
        return f"{self.error} — {self.fix}" if self.fix else self.error


def parse_job(data: dict) -> JobStatus:
    """A ``GET /jobs/{id}`` answer as a :class:`JobStatus`; missing fields become defaults."""
    progress = data.get("progress") if isinstance(data.get("progress"), dict) else {}
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    done, total = _int(progress.get("done")), _int(progress.get("total"))
    fraction = _float(progress.get("fraction"))
    return JobStatus(
        id=str(data.get("id", "")), kind=str(data.get("kind", "")), state=str(data.get("state", "")),
        done=done, total=total, fraction=fraction if fraction is not None else (done / total if total else 0.0),
        stage=str(progress.get("stage") or ""), message=str(progress.get("message") or ""),
        rate=_float(data.get("rate")), eta_s=_float(data.get("eta_s")),
        error=str(error.get("message") or ""), fix=str(error.get("fix") or ""),
        result=data.get("result") if isinstance(data.get("result"), dict) else {},
        request=data.get("request") if isinstance(data.get("request"), dict) else {})


def health_text(health: dict) -> str:
    """"Connected · 0.1.0 · cuda · NVIDIA H200 · 131 GiB free" from ``GET /health``."""
    parts = ["Connected"]
    if health.get("version"):
        parts.append(str(health["version"]))
    if health.get("device"):
        parts.append(str(health["device"]))
    if health.get("gpu"):
        parts.append(str(health["gpu"]))
    free = health.get("gpu_memory_free_mb")
    if isinstance(free, (int, float)) and not isinstance(free, bool):
        parts.append(f"{free / 1024:.3g} GiB free")
    if health.get("compute") == "crashed":
        parts.append("compute crashed")
    return " · ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _int(value) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
