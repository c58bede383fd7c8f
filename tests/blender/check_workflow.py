"""Run under a Blender Python (bpy): the add-on driving a real ``audio-cppn serve``, reported as JSON.

Usage: ``python tests/blender/check_workflow.py SPEC.json`` with a Blender venv's python. One Blender
process does the whole workflow, in background mode (the operators wait for their jobs): install the
built zip, reach the preferences, start the backend from the add-on, train a style, render the
scene's track, load it into the compositor, a material and the sequencer, re-render and reload,
encode with Blender, lose the backend mid-job and restart it, stop it. Every sidebar panel is drawn
against a recording layout in each state. ``tests/test_addon_workflow.py`` asserts on the last stdout
line starting with ``RESULT ``.
"""

import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

if "BLENDER_USER_RESOURCES" not in os.environ:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="audio-cppn-blender-")

import bpy  # noqa: E402

ADDON = "bl_ext.user_default.audio_cppn"
SPACES = ("view3d", "sequencer", "compositor")


def module(name):
    return sys.modules[f"{ADDON}.{name}"]


class RecordingLayout:
    """A UILayout stand-in: records every call, and checks that each ``prop`` names a real property."""

    def __init__(self, items):
        self.items = items
        self.enabled = self.alert = self.active = True
        self.scale_y = 1.0

    def _child(self, *_, **__):
        return RecordingLayout(self.items)

    row = column = box = split = grid_flow = column_flow = _child

    def operator(self, idname, **kw):
        self.items.append(["operator", idname, kw.get("text")])
        return SimpleNamespace()  # properties set on it (``.kind = ...``) are accepted

    def label(self, text="", **_):
        self.items.append(["label", text])

    def separator(self, **_):
        pass

    def prop(self, data, name, **_):
        if name not in data.bl_rna.properties:
            raise AttributeError(f"{type(data).__name__} has no property {name!r}")
        self.items.append(["prop", name])

    def template_icon_view(self, data, name, **_):
        if name not in data.bl_rna.properties:
            raise AttributeError(f"{type(data).__name__} has no property {name!r}")
        self.items.append(["icon_view", name])

    def progress(self, factor=0.0, type="BAR", text=""):
        self.items.append(["progress", round(factor, 4), text])


class WithLayout:
    """``self`` for AddonPreferences.draw: the real preferences, with a recording layout."""

    def __init__(self, target, layout):
        self.layout = layout
        self._target = target

    def __getattr__(self, name):
        return getattr(self._target, name)


def draw_all(context) -> dict:
    """Every panel of every editor, drawn; {panel: items} or {panel: "error: ..."}."""
    drawn = {}
    for space in SPACES:
        for suffix in ("", "_train", "_render", "_frames"):
            name = f"AUDIO_CPPN_PT_{space}{suffix}"
            items = []
            try:
                getattr(bpy.types, name).draw(SimpleNamespace(layout=RecordingLayout(items)), context)
                drawn[name] = items
            except Exception as exc:  # noqa: BLE001 - reported to the test
                drawn[name] = f"error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    prefs_items = []
    prefs = bpy.context.preferences.addons[ADDON].preferences
    try:
        type(prefs).draw(WithLayout(prefs, RecordingLayout(prefs_items)), context)
        drawn["preferences"] = prefs_items
    except Exception as exc:  # noqa: BLE001 - reported to the test
        drawn["preferences"] = f"error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return drawn


def context_for(scene):
    return SimpleNamespace(scene=scene, preferences=bpy.context.preferences, space_data=None,
                           window_manager=bpy.context.window_manager)


def wait_connected(timeout=10.0) -> bool:
    connection, prefs = module("connection"), module("prefs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        monitor = connection.monitor(prefs.backend_settings())
        if monitor is not None and monitor.snapshot().connected and monitor.snapshot().styles is not None:
            module("previews").update(monitor.snapshot())
            return True
        time.sleep(0.1)
    return False


def wait_job_state(kind, scene, states, timeout=120.0):
    """Until the monitor has seen the scene's job in one of ``states`` with a frame or step done."""
    jobs = module("jobs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.status_of(scene, kind)
        if status is not None and status.state in states and (status.done > 0 or status.finished):
            return status
        time.sleep(0.05)
    return None


def call(op, **kw) -> dict:
    """An operator's outcome: {"ok": [...]} or {"error": message} (an ERROR report raises RuntimeError)."""
    started = time.monotonic()
    try:
        return {"ok": sorted(op(**kw)), "seconds": time.monotonic() - started}
    except RuntimeError as exc:
        return {"error": str(exc), "seconds": time.monotonic() - started}


def scene_state(scene) -> dict:
    state = {"images": sorted(i.name for i in bpy.data.images if i.name.startswith("Audio CPPN")),
             "materials": sorted(m.name for m in bpy.data.materials if m.name.startswith("Audio CPPN")),
             "nodes": [], "strips": [], "material": None,
             "frame_range": [scene.frame_start, scene.frame_end], "fps": [scene.render.fps, scene.render.fps_base],
             "filepath": scene.render.filepath}
    tree = scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree
    if tree is not None:
        for node in tree.nodes:
            entry = {"name": node.name, "type": node.bl_idname}
            if node.bl_idname == "CompositorNodeImage":
                entry.update({k: getattr(node, k) for k in ("frame_duration", "frame_start", "frame_offset")})
                entry["image"] = node.image.name if node.image else None
            state["nodes"].append(entry)
    if scene.sequence_editor is not None:
        strips = module("bpy_compat").sequencer_strips(scene)
        state["strips"] = sorted([{"name": s.name, "type": s.type, "channel": s.channel,
                                   "start": s.frame_final_start, "end": s.frame_final_end,
                                   "elements": len(s.elements) if s.type == "IMAGE" else None}
                                  for s in strips], key=lambda s: s["name"])
    obj = bpy.context.view_layer.objects.active
    if obj is not None and obj.active_material is not None and obj.active_material.node_tree is not None:
        texture = next((n for n in obj.active_material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"), None)
        state["material"] = {
            "object": obj.name, "material": obj.active_material.name, "slots": len(obj.material_slots),
            "nodes": len(obj.active_material.node_tree.nodes),
            "image": texture.image.name if texture and texture.image else None,
            "user": {k: getattr(texture.image_user, k) for k in ("frame_duration", "frame_start", "frame_offset",
                                                                  "use_auto_refresh")} if texture else None}
    return state


def render_stills(scene, frames, out: Path, name: str) -> dict:
    r = scene.render
    saved = (r.filepath, getattr(r.image_settings, "media_type", None), r.image_settings.file_format)
    if hasattr(r.image_settings, "media_type"):
        r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.dither_intensity = 0.0
    paths = {}
    for frame in frames:
        scene.frame_set(frame)
        r.filepath = str(out / f"{name}_{frame:06d}.png")
        bpy.ops.render.render(write_still=True)
        paths[str(frame)] = r.filepath
    if saved[1] is not None:
        r.image_settings.media_type = saved[1]
    r.image_settings.file_format, r.filepath = saved[2], saved[0]
    return paths


def new_scene(case: dict):
    """Factory startup scene with the case's fps, size, start frame and sound (a strip where Blender can)."""
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.fps, scene.render.fps_base = case["fps"], case["fps_base"]
    scene.render.resolution_x, scene.render.resolution_y = case["size"]
    scene.render.resolution_percentage = case.get("percentage", 100)
    scene.frame_start = case["frame_start"]
    scene.frame_end = case["frame_end"]
    settings = scene.audio_cppn
    if module("bpy_compat").has_audio():
        strips = module("bpy_compat").sequencer_strips(scene)
        strips.new_sound("Song", case["audio"], 2, case["frame_start"])
        settings.audio_source = "STRIP"
    else:
        settings.audio_source, settings.audio_file = "FILE", case["audio"]
    settings.style = case["style"]
    settings.file_format = case["format"]
    settings.frame_range = "SCENE"
    settings.output_folder = case["output_parent"]
    settings.flash, settings.amount = 2.0, 1.0
    return scene


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    report = {"version": list(bpy.app.version), "audio": bool(getattr(bpy.app.build_options, "audaspace", True))}
    bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
    report["enabled"] = ADDON in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons[ADDON].preferences
    report["prefs"] = {"bl_idname": type(prefs).bl_idname,
                       "token_subtype": prefs.bl_rna.properties["attach_token"].subtype,
                       "output_folder": prefs.output_folder, "properties": sorted(prefs.bl_rna.properties.keys())}
    prefs.backend_command, prefs.data_dir = spec["backend_command"], spec["data_dir"]
    prefs.styles_dir = spec["styles_dir"]
    jobs, connection = module("jobs"), module("connection")
    scene = new_scene(spec["cases"][0])
    ctx = context_for(scene)
    drawn = {"no_backend": draw_all(ctx)}
    report["render_without_backend"] = call(bpy.ops.audio_cppn.render_frames)

    # The add-on starts the backend itself.
    report["start"] = call(bpy.ops.audio_cppn.start_backend)
    server = json.loads((Path(spec["data_dir"]) / "server.json").read_text())
    report["server"] = {"pid": server["pid"], "child_pid": connection._process.process.pid,
                        "connected": wait_connected()}
    drawn["idle"] = draw_all(ctx)

    # Train a style (the tiny CLIP model, on the CPU), drawing the panels while it runs.
    scene.audio_cppn.prompt = "glowing coral reef"
    scene.audio_cppn.new_style_name = "coral"
    scene.audio_cppn.steps, scene.audio_cppn.resolutions = spec["train"]["steps"], "32"
    train_options = json.dumps(spec["train"]["options"])
    status = jobs.submit(scene, "train", scene.audio_cppn.train_request(**spec["train"]["options"]))
    seen = wait_job_state("train", scene, ("running", "done"))
    drawn["training"] = draw_all(ctx)
    report["train_seen_running"] = seen.state if seen else None
    report["train"] = call(bpy.ops.audio_cppn.train_style, options=train_options)  # re-attaches, waits
    report["trained_style"] = scene.audio_cppn.style
    monitor = connection.monitor(module("prefs").backend_settings())
    deadline = time.monotonic() + 10  # the monitor refreshes the style list once a training finished
    while "coral" not in [s["name"] for s in monitor.snapshot().styles or []] and time.monotonic() < deadline:
        time.sleep(0.1)
    snapshot = monitor.snapshot()
    module("previews").update(snapshot)
    report["styles_after_training"] = sorted(s["name"] for s in snapshot.styles or [])
    report["picker"] = [item[0] for item in module("previews").enum_items()]
    # Background Blender makes no icons (icon_id stays 0), so report what reached bpy.utils.previews.
    collection = module("previews")._collection
    report["preview_files"] = {name: Path(path).read_bytes()[:8].hex() for name, path in snapshot.previews.items()}
    report["preview_collection"] = sorted(key.split(":")[0] for key in collection.keys()) if collection else []
    report["train_job"] = status.id

    # Cancel a longer training from the sidebar's Cancel button; Release GPU while idle.
    scene.audio_cppn.new_style_name, scene.audio_cppn.steps = "coral_long", 400
    long_run = jobs.submit(scene, "train", scene.audio_cppn.train_request(**spec["train"]["options"]))
    wait_job_state("train", scene, ("running",))
    report["cancel"] = call(bpy.ops.audio_cppn.cancel_job, kind="train")
    final = jobs.wait(scene, "train", long_run)
    report["cancelled"] = {"state": final.state, "done": final.done, "total": final.total,
                           "error_line": scene.audio_cppn.train_error, "style": scene.audio_cppn.style}
    report["release"] = call(bpy.ops.audio_cppn.release_gpu)

    report["cases"] = {}
    for case in spec["cases"]:
        report["cases"][case["name"]] = run_case(case, out, drawn)

    # Backend killed mid-job: a clear error quickly; restarting lets the same job finish.
    report["kill"] = kill_and_resume(spec["kill_case"], out)

    drawn["after_stop"] = None
    report["stop"] = call(bpy.ops.audio_cppn.stop_backend)
    report["stopped"] = {"server_file": (Path(spec["data_dir"]) / "server.json").exists(),
                         "child_alive": _alive(server["pid"])}
    drawn["after_stop"] = draw_all(context_for(bpy.context.scene))
    report["drawn"] = drawn
    print("RESULT " + json.dumps(report), flush=True)


def run_case(case: dict, out: Path, drawn: dict) -> dict:
    jobs = module("jobs")
    scene = new_scene(case)
    result = {"request": scene.audio_cppn.to_request(scene)}
    if case.get("draw_rendering"):
        status = jobs.submit(scene, "render", result["request"])
        wait_job_state("render", scene, ("running", "done"))
        drawn["rendering"] = draw_all(context_for(scene))
        result["render"] = call(bpy.ops.audio_cppn.render_frames)  # re-attaches to the job, waits
        result["job"] = status.id
    else:
        result["render"] = call(bpy.ops.audio_cppn.render_frames)
    result["folder"] = scene.audio_cppn.render_folder
    loads = {}
    for target in case["targets"]:
        scene.audio_cppn.load_into = target
        loads[target] = {"load": call(bpy.ops.audio_cppn.load_frames), "state": scene_state(scene)}
        if target == "COMPOSITOR":
            loads[target]["stills"] = render_stills(scene, case["stills"], out, f"{case['name']}_comp")
    result["loads"] = loads
    if case.get("rerender"):  # new reactivity into the same folder, then load again: only pixels change
        before = scene_state(scene)
        scene.audio_cppn.flash, scene.audio_cppn.overwrite = 0.0, True
        result["rerender"] = call(bpy.ops.audio_cppn.render_frames)
        result["reload"] = call(bpy.ops.audio_cppn.load_frames)
        result["reloaded_same"] = scene_state(scene) == before
        result["reloaded_state"] = scene_state(scene)
        scene.audio_cppn.flash, scene.audio_cppn.overwrite = 2.0, False
        result["rerender_back"] = call(bpy.ops.audio_cppn.render_frames, options=json.dumps({"overwrite": True}))
        result["reload_back"] = call(bpy.ops.audio_cppn.load_frames)
    if case.get("encode"):
        scene.audio_cppn.load_into = "COMPOSITOR"
        call(bpy.ops.audio_cppn.load_frames)
        result["encode"] = call(bpy.ops.audio_cppn.encode_video)
        result["video"] = bpy.path.abspath(scene.render.frame_path(frame=scene.frame_start))
    result["scene_frame_start"] = scene.frame_start
    return result


def kill_and_resume(case: dict, out: Path) -> dict:
    """The render operator is waiting on its job when the backend is SIGKILLed (from a thread, as a crash
    would): the operator must fail with a clear error soon after, and a restart must finish the same job."""
    jobs, connection, poller = module("jobs"), module("connection"), module("poller")
    scene = new_scene(case)
    client = jobs.client()
    killed = {}
    result = {}
    # Submitted from the sidebar, then the .blend is saved and opened again: the timer (ticked here by
    # hand, timers do not run in background mode) follows the job from the id saved in the scene and
    # loads the frames while they land, refreshing in place.
    status = jobs.submit(scene, "render", scene.audio_cppn.to_request(scene))
    blend = out / "kill.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    result["reopened_job"] = scene.audio_cppn.render_job == status.id
    landing = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len({s["loaded"] for s in landing if s["loaded"]}) < 2:
        poller.tick()
        tree = scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree
        nodes = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"] if tree is not None else []
        seen = jobs.status_of(scene, "render")
        landing.append({"loaded": scene.audio_cppn.loaded_frames, "done": seen.done if seen else None,
                        "image_nodes": len(nodes), "duration": nodes[0].frame_duration if nodes else None,
                        "images": len([i for i in bpy.data.images if i.name.startswith("Audio CPPN")])})
        time.sleep(0.25)
    result["landing"] = [s for s in landing if s["loaded"]]

    def kill_when_running():
        """Once the operator below is waiting (a few frames after it started), as a crash would."""
        deadline, first_done = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            job_id = scene.audio_cppn.render_job
            if job_id:
                try:
                    status = module("job_request").parse_job(client.job(job_id))
                except Exception:  # noqa: BLE001
                    status = None
                if status is not None and first_done is None:
                    first_done = status.done
                if status is not None and status.state == "running" and status.done >= first_done + 5:
                    killed["done"] = status.done
                    os.kill(connection._process.process.pid, signal.SIGKILL)
                    killed["at"] = time.monotonic()
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_when_running)
    thread.start()
    result["lost"] = call(bpy.ops.audio_cppn.render_frames)  # re-attaches, waits until the backend is gone
    ended = time.monotonic()
    thread.join()
    result["running_before_kill"] = killed.get("done")
    result["error_after_kill_s"] = ended - killed["at"] if "at" in killed else None
    result["job"] = scene.audio_cppn.render_job
    result["error_line"] = scene.audio_cppn.render_error
    monitor = connection.monitor(module("prefs").backend_settings())
    deadline = time.monotonic() + 10
    while monitor is not None and monitor.snapshot().connected and time.monotonic() < deadline:
        time.sleep(0.05)
    result["status_line"] = monitor.snapshot().status if monitor else None
    result["drawn_failed"] = draw_all(context_for(scene))
    result["restart"] = call(bpy.ops.audio_cppn.start_backend)
    result["resume"] = call(bpy.ops.audio_cppn.render_frames)  # re-attaches to the interrupted job
    result["resumed_job"] = scene.audio_cppn.render_job
    result["folder"] = scene.audio_cppn.render_folder
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    main(sys.argv[-1])
