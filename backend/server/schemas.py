"""What the service answers: the response shapes in its OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]


class ErrorInfo(BaseModel):
    kind: str = Field(description="InvalidInput, NotFound, Conflict, DeviceUnavailable, Cancelled, Unauthorized, ...")
    message: str
    fix: str | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class JobProgress(BaseModel):
    stage: str = Field(description="analyse, render, load, train, save, ...")
    done: int
    total: int
    fraction: float
    message: str = ""
    info: dict[str, Any] = Field(default_factory=dict)


class Job(BaseModel):
    id: int
    kind: Literal["render", "train", "features"]
    state: JobState
    priority: int
    progress: JobProgress | None = None
    rate: float | None = Field(None, description="units of the current stage per second (frames/s, steps/s)")
    eta_s: float | None = None
    created: str
    started: str | None = None
    finished: str | None = None
    attempts: int = Field(description="times the worker started it; more than 1 means resumed after a restart")
    cancel_requested: bool
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None


class JobList(BaseModel):
    jobs: list[Job]


class ClipWeights(BaseModel):
    model: str
    pretrained: str | None
    available: bool
    detail: str


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    pid: int
    uptime_s: float
    device: str | None = Field(description="cpu or cuda: what jobs asking for 'auto' get; null until known")
    requested_device: str
    gpu: str | None = None
    gpu_memory_total_mb: int | None = None
    gpu_memory_free_mb: int | None = None
    compute: str = Field(description="starting, ready, released or crashed")
    compute_pid: int | None = None
    queue_length: int
    running_job: int | None = None
    clip_weights: list[ClipWeights]


class StyleOut(BaseModel):
    name: str
    kind: str
    prompt: str
    created: str | None = None
    similarity: float | None = Field(None, description="the training's best CLIP similarity, where known")
    parameters: int
    path: str
    preview: str | None = Field(None, description="URL path of the preview PNG, if the style has one")
    metadata: dict[str, Any]


class StyleList(BaseModel):
    styles: list[StyleOut]
    problems: list[str] = Field(description="one line per style file that could not be read")


class Released(BaseModel):
    released: bool


class Deleted(BaseModel):
    deleted: int
