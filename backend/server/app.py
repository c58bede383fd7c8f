"""The HTTP API: FastAPI routes over the job store, the worker and the style library.

Handlers only read the store, check requests and hand work to the worker, so they answer in
milliseconds while a job computes in the compute process. Every :class:`BackendError` becomes
its 4xx with ``{"error": {"kind", "message", "fix"}}``: the message the CLI would print.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import anyio
from fastapi import Body, FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import __version__
from backend.errors import BackendError, Conflict, DeviceUnavailable, InvalidInput, NotFound
from backend.server import requests as job_requests
from backend.server.schemas import (ClipWeights, Deleted, ErrorBody, Health, Job, JobList, JobState, Released,
                                    StyleList, StyleOut)
from backend.server.security import BodyTooLarge
from backend.server.store import JobStore
from backend.server.worker import Worker, log

STATUS = {InvalidInput: 400, DeviceUnavailable: 400, NotFound: 404, Conflict: 409}
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422)}
JOB_ID = PathParam(ge=1, le=2**62, description="the job's id")
CLIP_CHECK_EVERY_S = 30.0


@dataclass
class Service:
    store: JobStore
    worker: Worker
    styles_dir: Path
    requested_device: str
    started: float = field(default_factory=time.monotonic)
    _clip: tuple[float, list] = (0.0, [])
    submit_lock: threading.Lock = field(default_factory=threading.Lock)

    def clip_weights_now(self) -> list[dict]:
        """The last answer of :meth:`clip_weights` at once; a stale one is refreshed in the background."""
        checked, rows = self._clip
        if not rows:
            return self.clip_weights()
        if time.monotonic() - checked >= CLIP_CHECK_EVERY_S:
            self._clip = (time.monotonic(), rows)  # one refresh at a time
            threading.Thread(target=self.clip_weights, daemon=True).start()
        return rows

    def clip_weights(self) -> list[dict]:
        """Whether the default CLIP weights are on this machine (reads the weights cache folders)."""
        from backend.clip.models import resolve_weights
        from backend.train.config import TrainConfig

        rows = []
        for model, tag in ((TrainConfig.clip_model, TrainConfig.pretrained),):
            try:
                source = resolve_weights(model, tag)
                rows.append({"model": model, "pretrained": tag, "available": True, "detail": str(source.weights)})
            except BackendError as exc:
                rows.append({"model": model, "pretrained": tag, "available": False, "detail": exc.message})
        self._clip = (time.monotonic(), rows)
        return rows


def error_response(status: int, kind: str, message: str, fix: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"kind": kind, "message": message, "fix": fix}}, status_code=status)


def create_app(service: Service) -> FastAPI:
    store, worker = service.store, service.worker

    @asynccontextmanager
    async def lifespan(app):
        worker.start()
        threading.Thread(target=service.clip_weights, daemon=True).start()  # the first /health answers at once
        yield
        await anyio.to_thread.run_sync(worker.shutdown)

    app = FastAPI(title="audio-cppn service", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, description="Render and train jobs for Audio CPPN; see the README's Service section.")

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, exc: BackendError):
        return error_response(STATUS.get(type(exc), 400), type(exc).__name__, exc.message, exc.fix)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return error_response(422, "InvalidInput", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):  # FastAPI's own 4xx (unreadable body...)
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "InvalidInput")
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        return error_response(413, "TooLarge", "request body too large")

    @app.get("/health", response_model=Health, tags=["service"])
    async def health():
        """Version, device, GPU, CLIP weights on disk, queue length, uptime. Needs no token."""
        info = worker.compute.info
        clip = service.clip_weights_now()
        return Health(status="ok", version=__version__, pid=os.getpid(),
                      uptime_s=round(time.monotonic() - service.started, 3), device=info.get("device"),
                      requested_device=service.requested_device, gpu=info.get("gpu"),
                      gpu_memory_total_mb=info.get("gpu_memory_total_mb"),
                      gpu_memory_free_mb=info.get("gpu_memory_free_mb"), compute=worker.compute_state,
                      compute_pid=worker.compute.proc.pid if worker.compute.alive else None,
                      queue_length=store.count(("queued",)), running_job=worker.current,
                      clip_weights=[ClipWeights(**row) for row in clip])

    @app.get("/styles", response_model=StyleList, responses=ERRORS, tags=["styles"])
    def styles():
        """The style library: every readable style, and one line per broken file."""
        problems: list[str] = []
        return StyleList(styles=_library(service.styles_dir, problems), problems=problems)

    @app.get("/styles/{name}", response_model=StyleOut, responses=ERRORS, tags=["styles"])
    def style(name: str):
        """One style: kind, prompt, created, CLIP similarity, parameters, metadata."""
        return _one_style(service.styles_dir, name)

    @app.get("/styles/{name}/preview.png", response_class=FileResponse, tags=["styles"],
             responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "the preview image"}})
    def style_preview(name: str):
        """The style's preview image (PNG, 384x216)."""
        found = _one_style(service.styles_dir, name)
        if found.preview is None:
            raise NotFound(f"style {name!r} has no preview image")
        return FileResponse(Path(found.path).with_suffix(".png"), media_type="image/png")

    @app.post("/jobs", status_code=201, response_model=Job, responses=ERRORS, tags=["jobs"])
    def create_job(request: job_requests.JobRequest = Body(...)):
        """Queue a render, train or features job; checked first, so a bad request queues nothing."""
        r = request.model_dump()
        cuda = worker.compute.info.get("cuda_available")
        targets = job_requests.job_targets(request.kind, r, styles_dir=service.styles_dir)
        try:
            if request.kind == "render":
                job_requests.check_render(r, styles_dir=service.styles_dir, cuda=cuda)
            elif request.kind == "train":
                job_requests.check_train(r, request.model_fields_set, styles_dir=service.styles_dir, cuda=cuda)
            else:
                job_requests.check_features(r)
        except Conflict:  # a running job of ours holds the output's lock: "job 7" says more than its pid
            _refuse_if_busy(store, targets)
            raise
        with service.submit_lock:  # two requests for one output at once: exactly one is queued
            _refuse_if_busy(store, targets)
            job = store.add(request.kind, job_requests.stored(request), targets, priority=request.priority)
        log.info("job %d queued (%s -> %s)", job["id"], request.kind, ", ".join(targets))
        worker.wake()
        return _job(job, worker)

    @app.get("/jobs", response_model=JobList, responses=ERRORS, tags=["jobs"])
    async def list_jobs(state: Optional[JobState] = Query(None), limit: int = Query(100, ge=1, le=1000)):
        """Jobs, newest first; ``state`` filters."""
        return JobList(jobs=[_job(j, worker) for j in store.list(state, limit)])

    @app.get("/jobs/{job_id}", response_model=Job, responses=ERRORS, tags=["jobs"])
    async def get_job(job_id: int = JOB_ID):
        """A job's state, progress, rate, ETA, result or error."""
        return _job(_find(store, job_id), worker)

    @app.post("/jobs/{job_id}/cancel", response_model=Job, responses=ERRORS, tags=["jobs"])
    async def cancel_job(job_id: int = JOB_ID):
        """Cancel: a queued job at once, a running one after its current frame or step
        (a render keeps its finished frames, a training its checkpoint)."""
        job = _find(store, job_id)
        if job["state"] == "queued" and store.cancel_queued(job_id):
            log.info("job %d cancelled before it started", job_id)
        elif job["state"] == "running":
            store.request_cancel(job_id)
            worker.cancel(job_id)
            log.info("job %d cancel requested", job_id)
        return _job(_find(store, job_id), worker)

    @app.delete("/jobs/{job_id}", response_model=Deleted, responses=ERRORS, tags=["jobs"])
    async def delete_job(job_id: int = JOB_ID):
        """Forget a finished job (its files stay)."""
        job = _find(store, job_id)
        if not store.delete(job_id):
            raise Conflict(f"job {job_id} is {job['state']}; only a finished job can be forgotten",
                           fix="cancel it first")
        log.info("job %d forgotten", job_id)
        return Deleted(deleted=job_id)

    @app.post("/release", response_model=Released, responses=ERRORS, tags=["service"])
    def release():
        """Free the device: stops the compute process and its cached models (restarted by the next job)."""
        if not worker.release():
            raise Conflict(f"job {worker.current} is running; cancel it or wait before releasing the device")
        return Released(released=True)

    return app


def _refuse_if_busy(store: JobStore, targets: list[str]) -> None:
    holder = store.active_holding(targets)
    if holder is not None:
        raise Conflict(f"job {holder['id']} ({holder['state']}) already writes {', '.join(targets)}",
                       fix=f"wait for job {holder['id']} or cancel it")


def _find(store: JobStore, job_id: int) -> dict:
    job = store.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _job(job: dict, worker: Worker) -> Job:
    live = worker.live.get(job["id"]) if job["state"] == "running" else None
    out = {k: job[k] for k in ("id", "kind", "state", "priority", "created", "started", "finished", "attempts",
                               "cancel_requested", "request", "result", "error", "progress")}
    if live:
        out.update(progress=live["progress"], rate=live["rate"], eta_s=live["eta_s"])
    return Job(**out)


_LIBRARY_CACHE: dict = {}  # folder listing signature -> (styles, problems): reading headers costs ~15 ms a style


def _library(styles_dir: Path, problems: list[str]) -> list[StyleOut]:
    """The library folder's styles, plus the bundled ones it does not shadow (usable by name too)."""
    from backend.paths import bundled_styles_dir

    folders = [Path(styles_dir)]
    bundled = bundled_styles_dir()
    if bundled is not None and bundled.resolve() != Path(styles_dir).resolve():
        folders.append(bundled)
    signature = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for folder in folders if folder.is_dir()
                      for p in sorted(folder.iterdir()) if p.suffix in (".safetensors", ".png"))
    if signature not in _LIBRARY_CACHE:
        _LIBRARY_CACHE.clear()
        seen: list[str] = []
        _LIBRARY_CACHE[signature] = (_read_library(folders, seen), seen)
    styles, seen = _LIBRARY_CACHE[signature]
    problems.extend(seen)
    return styles


def _read_library(folders: list[Path], problems: list[str]) -> list[StyleOut]:
    from backend.styles.library import list_styles

    found: dict[str, StyleOut] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for info in list_styles(folder, problems=problems):
            if info.name not in found:
                meta = info.metadata
                similarity = meta.get("best_similarity")
                found[info.name] = StyleOut(
                    name=info.name, kind=info.kind, prompt=info.prompt, created=_text(meta.get("created")),
                    similarity=similarity if isinstance(similarity, (int, float)) else None,
                    parameters=info.parameters, path=info.path, metadata=meta,
                    preview=f"/styles/{info.name}/preview.png" if info.preview else None)
    return sorted(found.values(), key=lambda s: s.name)


def _one_style(styles_dir: Path, name: str) -> StyleOut:
    from backend.styles.library import check_style_name, read_header, style_path

    path = style_path(check_style_name(name), styles_dir)  # NotFound lists what there is
    problems: list[str] = []
    for info in _library(styles_dir, problems):
        if info.name == name:
            return info
    read_header(path)  # the file is there but unreadable: say why
    raise NotFound(f"no style named {name!r}")


def _text(value) -> str | None:
    return value if isinstance(value, str) else None
