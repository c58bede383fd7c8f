"""The one ``bpy.app.timers`` function: brings what the monitor thread learnt into Blender.

It never holds an operator and never waits on the network: it reads the monitor's latest
snapshot, records finished jobs in their scenes, loads frames as they land, and redraws the
sidebar. A .blend reopened while a job runs is followed again (job ids live in the scene).
"""

from __future__ import annotations

import time

import bpy
from bpy.app.handlers import persistent

from . import connection, jobs, previews
from .prefs import backend_settings

INTERVAL = 0.25  # seconds between ticks
REFRESH_EVERY = 1.0  # seconds between reloads of a sequence that is still growing
_last_refresh: dict[str, float] = {}
_last_seen = [0.0]
start_error = [""]  # the last failed start, shown next to the Start button


def tick() -> float:
    try:
        _tick()
    except Exception as exc:  # noqa: BLE001 - a timer that raises is unregistered by Blender: keep going
        print(f"Audio CPPN: {exc}")
    return INTERVAL


def _tick() -> None:
    settings = backend_settings()
    if connection.starting():
        start_error[0] = connection.poll_start(settings)
    monitor = connection.monitor(settings)
    if monitor is None:
        return
    snapshot = monitor.snapshot()
    if not snapshot.connected and snapshot.time:
        _follow_new_server(settings, monitor)
    changed = previews.update(snapshot) or snapshot.time != _last_seen[0]
    _last_seen[0] = snapshot.time
    for scene in bpy.data.scenes:
        _follow_scene(scene, monitor, snapshot)
    if changed:
        _redraw()


def _follow_new_server(settings, monitor) -> None:
    """A restarted backend listens on a new port (``--port 0``): poll the one server.json names now."""
    try:
        current = connection.find_client(settings)
    except Exception:  # noqa: BLE001 - still no server: keep showing "not running"
        return
    if current.url != monitor.client.url or current.token != monitor.client.token:
        watched = list(monitor.snapshot().jobs)
        fresh = connection.restart_monitor(settings)
        for job_id in watched:
            fresh.watch(job_id)


def _follow_scene(scene, monitor, snapshot) -> None:
    settings = getattr(scene, "audio_cppn", None)
    if settings is None:
        return
    for kind in ("render", "train"):
        job_id = getattr(settings, f"{kind}_job")
        if not job_id:
            continue
        status = snapshot.jobs.get(job_id)
        if status is None:
            if snapshot.connected and not getattr(settings, f"{kind}_error"):
                monitor.watch(job_id)  # a reopened .blend: follow the job again
            continue
        if kind == "render":
            _refresh_frames(scene, status)
        if status.finished and _mark_finished(scene, kind, status):
            jobs.finish(scene, kind, status)


def _mark_finished(scene, kind: str, status) -> bool:
    """True once per finished job (the scene remembers which it recorded)."""
    key = f"audio_cppn_{kind}_recorded"
    if scene.get(key) == status.id:
        return False
    scene[key] = status.id
    return True


def _refresh_frames(scene, status) -> None:
    if status.state not in ("running", "done") or status.done == 0:
        return
    now = time.monotonic()
    if not status.finished and now - _last_refresh.get(scene.name, 0.0) < REFRESH_EVERY:
        return
    if status.finished and scene.audio_cppn.loaded_frames >= status.total > 0:
        return
    _last_refresh[scene.name] = now
    jobs.refresh_loaded(scene, status)


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR", "NODE_EDITOR", "PREFERENCES"}:
                area.tag_redraw()


@persistent
def _on_load(_dummy=None) -> None:
    _last_refresh.clear()  # a new file: its scenes are followed from their stored job ids


def register():
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=INTERVAL, persistent=True)
    bpy.app.handlers.load_post.append(_on_load)


def unregister():
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)
