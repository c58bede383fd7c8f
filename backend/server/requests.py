"""Job requests: their JSON shape, and every check that must pass before a job is queued.

A request's settings are flat and named like the dataclasses the CLI fills (RenderConfig,
Reactivity, TrainConfig, AudioConfig), with the same defaults. The values are checked by those
dataclasses and the library's own probes (audio header, style header, writable output, CLIP
weights), so a bad request gets exactly the message the CLI prints, and nothing is queued.
The compute process builds its configs with the same functions (:func:`render_config`, ...).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from backend.audio.features import AudioConfig
from backend.errors import DeviceUnavailable, InvalidInput
from backend.model.reactivity import Reactivity
from backend.paths import DEFAULT_STYLE
from backend.render.config import RenderConfig
from backend.train.config import FLAT_NAMES, TrainConfig


def _default(cls, name: str):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


_R, _A, _X = RenderConfig, AudioConfig, Reactivity()
_T = TrainConfig().to_dict()  # flat training settings: the run's and the network's (hidden, depth, ...)
Number = Union[int, float]
Fps = Union[int, float, str]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int = Field(0, ge=-1000, le=1000, description="higher runs first; equal priorities run in the order queued")


class RenderRequest(_Request):
    """Render AUDIO with a style into a folder of EXR/PNG frames or an MP4 (``audio-cppn render``)."""

    kind: Literal["render"]
    audio: str = Field(description="absolute path of the track (wav, flac, ogg, mp3, or a video)")
    style: str = Field(DEFAULT_STYLE, description="a style name in the library, or an absolute .safetensors path")
    output: str = Field(description="absolute path: a folder for frames, or a file ending in .mp4")
    video: str | None = Field(None, description="with a folder output, also encode this absolute .mp4 path")
    size: str | None = Field(None, description="WIDTHxHEIGHT or a preset (720p, 1080p, ...); overrides width/height")
    width: int = _default(_R, "width")
    height: int = _default(_R, "height")
    fps: Fps = Field(30, description='a number, "29.97" or a fraction like "30000/1001"')
    frame_start: int = _default(_R, "frame_start")
    frames: str | list[int] | None = Field(None, description='scene frames "A-B" (inclusive) or [A, B]; null = all')
    duration: float | None = None
    format: str = _default(_R, "format")
    png_depth: int = _default(_R, "png_depth")
    exr_compression: str = _default(_R, "exr_compression")
    alpha: bool = _default(_R, "alpha")
    prefix: str = _default(_R, "prefix")
    seed: int = _default(_R, "seed")
    device: str = Field("auto", description="auto (the server's device), cpu, cuda or cuda:N")
    reactivity: Number = Field(_X.amount, description="global multiplier of every audio effect (Reactivity.amount)")
    morph: Number = _X.morph
    swell: Number = _X.swell
    pulse: Number = _X.pulse
    flash: Number = _X.flash
    gains: dict[str, Number] = Field(default_factory=dict, description='per-feature multipliers, e.g. {"bass": 1.5}')
    smoothing: dict[str, list[Number]] = Field(default_factory=dict,
                                               description='feature -> [attack_ms, release_ms], e.g. {"onset": [0, 60]}')
    overwrite: bool = False
    cpu_threads: int | None = Field(None, ge=1, le=1024, description="CPU compute threads (default: one per core)")
    bpm: float | None = Field(None, description="beat hint: fit the beat grid at this tempo (the phase still comes from the audio)")
    tempo_range: str | list[float] | None = Field(None, description='beat hint: search the beat only in this BPM range, "70-140" or [70, 140]')
    beats_file: str | None = Field(None, description="beat hint: absolute path of a text file, one beat time in seconds per line")


class TrainRequest(_Request):
    """Train a style from a text prompt into the library (``audio-cppn train``)."""

    kind: Literal["train"]
    prompt: str | None = Field(None, description='"ink in water" or "ink in water:1, gold leaf:0.5"; '
                                                 "optional with resume")
    name: str = Field(description="the style's name: NAME.safetensors in the library")
    resume: bool = Field(False, description="continue NAME's interrupted run from its checkpoint")
    overwrite: bool = False
    steps: int = _T["steps"]
    resolutions: list[int] | str = Field(list(_T["resolutions"]), description="cutout sizes, e.g. [256, 512]")
    hidden: int = _T["hidden"]
    depth: int = _T["depth"]
    first_omega: float = _T["first_omega"]
    time_omega: float = _T["time_omega"]
    time_periods: list[float] = Field(list(_T["time_periods"]), description="seconds per cycle of each slow time phase")
    clip_model: str = _T["clip_model"]
    pretrained: str | None = _T["pretrained"]
    cutouts: int = _T["cutouts"]
    lr: float = _T["lr"]
    seed: int = _T["seed"]
    device: str = Field("auto", description="auto (the server's device), cpu, cuda or cuda:N")
    negative: str = _T["negative"]
    negative_weight: float = _T["negative_weight"]
    features: str | None = Field(None, description="absolute path of a features file or audio; null = demo track")
    time_range_s: float = _T["time_range_s"]
    remix: float = _T["remix"]
    min_scale: float = _T["min_scale"]
    overscan: float = _T["overscan"]
    noise: float = _T["noise"]
    warmup_steps: int = _T["warmup_steps"]
    final_lr_fraction: float = _T["final_lr_fraction"]
    eval_every: int = _T["eval_every"]
    checkpoint_every: int = _T["checkpoint_every"]
    memory_budget_gb: float | None = None


class FeaturesRequest(_Request):
    """Analyse a track into per-frame features (``audio-cppn features``)."""

    kind: Literal["features"]
    audio: str = Field(description="absolute path of the track")
    output: str = Field(description="absolute path ending in .npz, .csv or .json")
    plot: str | None = Field(None, description="also draw the features into this absolute .png path")
    fps: Fps = 30
    frame_start: int = _default(_A, "frame_start")
    zero_phase: bool = Field(_default(_A, "zero_phase"), description="false: smooth causally like a live visualiser")
    bpm: float | None = Field(None, description="beat hint: fit the beat grid at this tempo (the phase still comes from the audio)")
    tempo_range: str | list[float] | None = Field(None, description='beat hint: search the beat only in this BPM range, "70-140" or [70, 140]')
    beats_file: str | None = Field(None, description="beat hint: absolute path of a text file, one beat time in seconds per line")


JobRequest = Annotated[Union[RenderRequest, TrainRequest, FeaturesRequest], Field(discriminator="kind")]
TRAIN_CONFIG_FIELDS = FLAT_NAMES


def stored(request: _Request) -> dict:
    """What the store keeps: the fields the client gave (so a resumed run knows what was asked)."""
    return {"kind": request.kind, **request.model_dump(exclude_unset=True)}


def parse_stored(data: dict) -> tuple[dict, set[str]]:
    """A stored request -> (every field, defaults filled in; the names the client gave)."""
    from pydantic import TypeAdapter

    request = TypeAdapter(JobRequest).validate_python(data)
    return request.model_dump(), set(request.model_fields_set)


def absolute(value: str | None, what: str) -> Path | None:
    if value is None:
        return None
    if not value or not os.path.isabs(value) or "\0" in value:
        raise InvalidInput(f"{what} must be an absolute path, got {value!r}",
                           fix="the server does not know the client's working folder")
    return Path(value)


# --- configs: built the same way here (to validate) and in the compute process (to run) ---

def render_config(r: dict, *, device: str | None = None) -> RenderConfig:
    from backend.audio.features import default_smoothing
    from backend.render.config import parse_frame_range, parse_size

    width, height = parse_size(r["size"]) if r.get("size") else (r["width"], r["height"])
    frames = r.get("frames")
    if isinstance(frames, str):
        frames = parse_frame_range(frames)
    elif frames is not None:
        if len(frames) != 2:
            raise InvalidInput(f"frames must be [A, B] (inclusive scene frames), got {frames}")
        frames = (int(frames[0]), int(frames[1]))
    reactivity = Reactivity(amount=r["reactivity"], morph=r["morph"], swell=r["swell"], pulse=r["pulse"],
                            flash=r["flash"], gains=dict(r.get("gains") or {}))
    audio_options = beat_hints(r)
    if r.get("smoothing"):
        table = default_smoothing()
        for name, value in r["smoothing"].items():
            if len(value) != 2:
                raise InvalidInput(f"smoothing for {name} must be [attack_ms, release_ms], got {value}")
            table[name] = tuple(value)
        audio_options["smoothing"] = table
    return RenderConfig(width=width, height=height, fps=r["fps"], frame_start=r["frame_start"], frames=frames,
                        duration=r.get("duration"), format=r["format"], png_depth=r["png_depth"],
                        exr_compression=r["exr_compression"], alpha=r["alpha"], prefix=r["prefix"],
                        seed=r["seed"], device=device or r["device"], reactivity=reactivity,
                        audio_options=audio_options, overwrite=r["overwrite"], cpu_threads=r.get("cpu_threads"))


def train_config(r: dict, *, device: str | None = None) -> TrainConfig:
    values = {k: r[k] for k in TRAIN_CONFIG_FIELDS if k in r}
    for name in ("resolutions", "time_periods"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    if device:
        values["device"] = device
    return TrainConfig.from_dict(values)


def audio_config(r: dict) -> AudioConfig:
    return AudioConfig(fps=r["fps"], frame_start=r["frame_start"], zero_phase=r["zero_phase"], **beat_hints(r))


def beat_hints(r: dict) -> dict:
    """AudioConfig's beat-hint fields from a request, read as the CLI reads --bpm, --tempo-range and
    --beats-file (the beats file is read when the config is built, so a bad one fails before queueing)."""
    from backend.audio.hints import parse_tempo_range, read_beats_file

    hints = {}
    if r.get("bpm") is not None:
        hints["bpm"] = r["bpm"]
    tempo_range = r.get("tempo_range")
    if isinstance(tempo_range, str):
        hints["tempo_range"] = parse_tempo_range(tempo_range)
    elif tempo_range is not None:
        if len(tempo_range) != 2:
            raise InvalidInput(f"tempo range must be [LOW, HIGH] in BPM, got {tempo_range}")
        hints["tempo_range"] = (float(tempo_range[0]), float(tempo_range[1]))
    if r.get("beats_file") is not None:
        hints["beat_times"] = read_beats_file(absolute(r["beats_file"], "beats file"))
    return hints


# --- checks before queueing: (normalised request, targets) or a BackendError ---

def job_targets(kind: str, r: dict, *, styles_dir: Path) -> list[str]:
    """What a job writes, as absolute paths (a style as ``style:PATH``): two active jobs never share one."""
    if kind == "train":
        return [f"style:{(Path(styles_dir) / r['name']).resolve()}"]
    second = "video" if kind == "render" else "plot"
    extra = absolute(r.get(second), second)
    return [str(absolute(r["output"], "output"))] + ([str(extra)] if extra is not None else [])


def check_render(r: dict, *, styles_dir: Path, cuda: bool | None) -> None:
    from backend.render.request import check_render_request

    audio = absolute(r["audio"], "audio")
    output = absolute(r["output"], "output")
    video = absolute(r.get("video"), "video")
    style = r["style"]
    if "/" in style or os.sep in style or style.endswith(".safetensors"):
        absolute(style, "style path")
    config = render_config(r)
    _check_device(config.device, cuda)
    check_render_request(audio, style, output, config=config, video=video, styles_dir=styles_dir)


def check_train(r: dict, fields_set: set[str], *, styles_dir: Path, cuda: bool | None) -> None:
    from backend.clip.prompts import parse_prompts
    from backend.train.run import check_targets, recorded_config, resume_config

    absolute(r.get("features"), "features")
    check_targets(r["name"], styles_dir, resume=r["resume"], overwrite=r["overwrite"])
    if r["resume"]:
        given = {k: r[k] for k in TRAIN_CONFIG_FIELDS if k in fields_set}
        for name in ("resolutions", "time_periods"):
            if isinstance(given.get(name), list):
                given[name] = tuple(given[name])
        prompt, config = resume_config(r["name"], styles_dir=styles_dir, **given)
    else:
        prompt, config = r.get("prompt"), train_config(r)
    parse_prompts(r.get("prompt") or prompt)
    parse_prompts(config.negative, what="negative prompt", allow_empty=True)
    _check_device(config.device, cuda)
    recorded_config(config)  # unknown CLIP model, missing weights: in well under a second


def check_features(r: dict) -> None:
    from backend.audio.files import check_output_path
    from backend.audio.io import probe_audio

    audio = absolute(r["audio"], "audio")
    output = absolute(r["output"], "output")
    plot = absolute(r.get("plot"), "plot")
    audio_config(r)
    check_output_path(output)
    if plot is not None:
        check_output_path(plot, (".png",))
    probe_audio(audio)


def _check_device(device: str, cuda: bool | None) -> None:
    if str(device).lower().startswith("cuda") and cuda is False:
        raise DeviceUnavailable(f"device {device!r} was requested but the server has no usable CUDA GPU",
                                fix="use device cpu or auto, or start the server on a GPU machine")
