"""What the operators, the timer and batch.py do with the service: submit, follow, load, encode.

Main thread only (it touches bpy). Every user problem is raised as a ``ClientError``,
``SettingsError``, ``RenderFolderError`` or ``BlenderUnsupported``; the operators report them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from . import connection, scene_setup
from .client import BackendDown, Client, ClientError
from .job_request import JobStatus, parse_job
from .load_plan import LoadOptions, plan_load, plan_running
from .monitor import wait_for_job
from .prefs import backend_settings, preferences

ACTIVE_STATES = ("queued", "running", "interrupted")  # interrupted: resumes when the service restarts


def client(context=None, *, start: bool | None = None) -> Client:
    """A client for the configured backend; starts ours when allowed (``start`` None: the preference)."""
    settings = backend_settings(context)
    try:
        found = connection.find_client(settings)
        Client(found.url, found.token, timeout=2.0).health()  # short: this runs on Blender's main thread
        return found
    except BackendDown:
        prefs = preferences(context)
        allowed = start if start is not None else bool(prefs and prefs.start_automatically)
        if not allowed:
            raise
    if not bpy.app.background:  # never freeze the UI while torch loads: start, and let the timer follow
        if not connection.starting():
            connection.start(settings, wait=False)
        raise BackendDown("The backend is starting", "press the button again once the status says Connected")
    return connection.start(settings, wait=True)


def submit(scene, kind: str, body: dict, context=None) -> JobStatus:
    """Send a job and remember its id in the scene (so a reopened .blend follows it)."""
    api = client(context)
    status = parse_job(api.submit(body))
    settings = scene.audio_cppn
    setattr(settings, f"{kind}_job", status.id)
    setattr(settings, f"{kind}_error", "")
    if kind == "render":
        settings.render_folder = body["output"]
        settings.loaded_frames = 0
    watch(status.id, context)
    return status


def active_job(scene, kind: str, context=None) -> JobStatus | None:
    """The scene's job of ``kind`` if the service still runs it (re-attach instead of submitting twice)."""
    job_id = getattr(scene.audio_cppn, f"{kind}_job")
    if not job_id:
        return None
    try:
        status = parse_job(client(context, start=False).job(job_id))
    except ClientError:
        return None
    return status if status.state in ACTIVE_STATES else None


def watch(job_id: str, context=None) -> None:
    monitor = connection.monitor(backend_settings(context))
    if monitor is not None:
        monitor.watch(job_id)


def wait(scene, kind: str, status: JobStatus, context=None) -> JobStatus:
    """Headless: poll until the job ends, printing progress; records the outcome in the scene."""
    api = client(context, start=False)
    last = [""]

    def show(s: JobStatus):
        text = s.progress_text()
        if text != last[0]:
            print(f"Audio CPPN {kind}: {text}", flush=True)
            last[0] = text

    try:
        final = wait_for_job(api, status.id, on_progress=show)
    except ClientError as exc:
        setattr(scene.audio_cppn, f"{kind}_error", str(exc))
        raise
    finish(scene, kind, final)
    return final


def finish(scene, kind: str, status: JobStatus) -> None:
    """Record a finished job: its error, or (training) the new style becomes the scene's style."""
    settings = scene.audio_cppn
    if status.state == "done":
        setattr(settings, f"{kind}_error", "")
    if status.state == "failed":
        setattr(settings, f"{kind}_error", user_words(status.error_text()) or "the job failed")
    elif status.state == "cancelled":
        setattr(settings, f"{kind}_error", "cancelled")
    elif kind == "train":
        name = status.result.get("style") or status.request.get("name")
        if name:
            settings.style = str(name)
        monitor = connection.monitor(backend_settings())
        if monitor is not None:
            monitor.refresh_styles()  # the new style appears in the picker


def user_words(text: str) -> str:
    """The service speaks the CLI's language; say it in the sidebar's."""
    return text.replace("use --overwrite", "tick Replace Frames")


def load_options(settings, *, sound: bool) -> LoadOptions:
    target = settings.load_into
    return LoadOptions(compositor="REPLACE" if target == "COMPOSITOR" else "NONE", sound=sound,
                       image_strip=target == "SEQUENCER", material=target == "MATERIAL")


def load_frames(scene, status: JobStatus | None = None) -> scene_setup.LoadResult:
    """Load the scene's render folder: all of it when finished, what exists so far while it runs.
    Loading again refreshes in place."""
    settings = scene.audio_cppn
    folder = settings.render_folder
    if not folder:
        from .render_manifest import RenderFolderError

        raise RenderFolderError("nothing rendered yet: press Render first")
    # A sound strip is added only for a file: the scene's own sound strip already plays the track.
    options = load_options(settings, sound=settings.audio_source == "FILE")
    if status is not None and not status.finished:
        first, last = running_range(status, folder)
        plan = plan_running(folder, first, last, options)
    else:
        plan = plan_load(folder, options)
    result = scene_setup.apply_plan(scene, plan)
    settings.loaded_frames = result.frames_on_disk
    return result


def running_range(status: JobStatus, folder: str) -> tuple[int, int]:
    """Scene frames a running render covers: its request's range, else the track in its manifest."""
    frames = status.request.get("frames")
    if isinstance(frames, list) and len(frames) == 2:
        return int(frames[0]), int(frames[1])
    import json

    track = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8")).get("track", {})
    return int(track["first"]), int(track["last"])


def refresh_loaded(scene, status: JobStatus) -> bool:
    """While a render runs: load once the first frame exists, then refresh as frames arrive."""
    settings = scene.audio_cppn
    if not settings.render_folder or status.done <= settings.loaded_frames and not status.finished:
        return False
    try:
        load_frames(scene, status)
    except Exception as exc:  # noqa: BLE001 - the first frame may not be written yet; try on the next tick
        print(f"Audio CPPN: frames not loaded yet ({exc})", file=sys.stderr)
        return False
    for image in bpy.data.images:
        if image.name.startswith(scene_setup.NAME) and image.source == "SEQUENCE":
            image.reload()
    return True


def encode_video(scene, *, background: bool) -> Path:
    """H.264 + AAC from the scene's sound, then Blender renders the animation (compositor, VSE and all)."""
    settings = scene.audio_cppn
    folder = Path(settings.render_folder) if settings.render_folder else Path(bpy.path.abspath("//audio_cppn"))
    path = folder.parent / f"{folder.name}_final.mp4"
    from . import bpy_compat

    scene_setup.set_video_output(scene, path, 2 if bpy_compat.has_audio() else 0)
    if background:
        bpy.ops.render.render(animation=True, scene=scene.name)
    else:
        bpy.ops.render.render("INVOKE_DEFAULT", animation=True)
    return path


def status_of(scene, kind: str, context=None) -> JobStatus | None:
    """The last status the monitor saw for the scene's job of ``kind`` (no network)."""
    job_id = getattr(scene.audio_cppn, f"{kind}_job")
    monitor = connection.monitor(backend_settings(context)) if job_id else None
    if monitor is None or not monitor.snapshot().connected:
        return None  # a lost backend: the sidebar shows the error and the buttons, not a frozen bar
    return monitor.snapshot().jobs.get(job_id)
