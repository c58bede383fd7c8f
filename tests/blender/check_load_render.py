"""Run under a Blender Python (bpy): install the built add-on, load render folders, render, report JSON.

Usage: ``python tests/blender/check_load_render.py SPEC.json`` with a Blender venv's python. The
spec names the add-on zip, an output folder and the cases; the last stdout line starting with
``RESULT `` is a JSON object that ``tests/test_blender_addon.py`` asserts on. Each case starts from
Blender's factory startup scene (cube, camera, light), as a new user's file would.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

# Keep Blender away from the real user config: this must happen before bpy is imported.
if "BLENDER_USER_RESOURCES" not in os.environ:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="audio-cppn-blender-")

import bpy  # noqa: E402

ADDON_MODULE = "bl_ext.user_default.audio_cppn"


def install(zip_path: str) -> dict:
    started = time.perf_counter()
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    return {"enabled": ADDON_MODULE in bpy.context.preferences.addons,
            "operator": hasattr(bpy.types, "AUDIO_CPPN_OT_load_render"),
            "panels": {cls: [getattr(bpy.types, cls).bl_space_type, getattr(bpy.types, cls).bl_category]
                       for cls in dir(bpy.types) if cls.startswith("AUDIO_CPPN_PT_")},
            "seconds": time.perf_counter() - started}


def scene_state(scene) -> dict:
    """Everything the add-on may set, in plain JSON types."""
    r = scene.render
    state = {
        "fps": r.fps, "fps_base": r.fps_base, "frame_start": scene.frame_start, "frame_end": scene.frame_end,
        "frame_current": scene.frame_current, "resolution": [r.resolution_x, r.resolution_y,
                                                             r.resolution_percentage],
        "sync_mode": scene.sync_mode, "view_transform": scene.view_settings.view_transform,
        "look": scene.view_settings.look, "film_transparent": r.film_transparent,
        "file_format": r.image_settings.file_format, "filepath": r.filepath,
        "media_type": getattr(r.image_settings, "media_type", None),
        "ffmpeg": {k: getattr(r.ffmpeg, k) for k in ("format", "codec", "audio_codec", "audio_channels")},
        "folder_property": scene.get("audio_cppn_folder"),
        "images": sorted(i.name for i in bpy.data.images),
        "image": None, "nodes": [], "output_from": None, "strips": [],
    }
    image = next((i for i in bpy.data.images if i.name.startswith("Audio CPPN")), None)
    if image is not None:
        state["image"] = {"name": image.name, "source": image.source, "filepath": bpy.path.abspath(image.filepath),
                          "colorspace": image.colorspace_settings.name, "alpha_mode": image.alpha_mode}
    tree = scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree
    if tree is not None:
        for node in tree.nodes:
            entry = {"name": node.name, "type": node.bl_idname, "mute": node.mute}
            if node.bl_idname == "CompositorNodeImage":
                entry.update({k: getattr(node, k) for k in ("frame_duration", "frame_start", "frame_offset",
                                                            "use_auto_refresh", "use_cyclic")})
                entry["image"] = node.image.name if node.image else None
            state["nodes"].append(entry)
        outputs = [n for n in tree.nodes if n.bl_idname in ("CompositorNodeComposite", "NodeGroupOutput")]
        if outputs and outputs[0].inputs[0].is_linked:
            state["output_from"] = outputs[0].inputs[0].links[0].from_node.name
    if scene.sequence_editor is not None:
        strips = scene.sequence_editor.strips if hasattr(scene.sequence_editor, "strips") \
            else scene.sequence_editor.sequences
        for strip in strips:
            entry = {"name": strip.name, "type": strip.type, "channel": strip.channel,
                     "frame_start": strip.frame_start, "frame_final_start": strip.frame_final_start,
                     "frame_final_end": strip.frame_final_end}
            if strip.type == "SOUND":
                entry["path"] = bpy.path.abspath(strip.sound.filepath)
            if strip.type == "IMAGE":
                entry["directory"] = bpy.path.abspath(strip.directory)
                entry["elements"] = [e.filename for e in strip.elements]
                entry["colorspace"] = strip.colorspace_settings.name
            state["strips"].append(entry)
    return state


def render_stills(scene, frames: list[int], out: Path, name: str) -> dict:
    """Render the given scene frames as 8-bit RGB PNGs (no dithering, so they are exact)."""
    r = scene.render
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
    return paths


class LayoutRecorder:
    """Stands in for a panel's UILayout (no UI in background mode) and records what is drawn."""

    def __init__(self):
        self.items = []

    def operator(self, idname, **_):
        self.items.append(["operator", idname])

    def label(self, text="", **_):
        self.items.append(["label", text])

    def box(self):
        return self

    def row(self, **_):
        return self


def panel_items(scene) -> list:
    panel = SimpleNamespace(layout=LayoutRecorder())
    bpy.types.AUDIO_CPPN_PT_view3d_frames.draw(panel, SimpleNamespace(scene=scene))
    return panel.layout.items


def run_case(case: dict, out: Path) -> dict:
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"  # the cube renders in ms (BACKGROUND mode shows it)
    before = scene_state(scene)
    result = {"name": case["name"], "error": None}
    started = time.perf_counter()
    if case.get("no_colorspace"):  # an OCIO config without the colour space the add-on needs
        compat = sys.modules[ADDON_MODULE + ".bpy_compat"]
        saved, compat.LINEAR_REC709_NAMES = compat.LINEAR_REC709_NAMES, ("No Such Space",)
    try:
        outcome = bpy.ops.audio_cppn.load_render(directory=case["folder"], **case.get("options", {}))
        result["outcome"] = sorted(outcome)
    except RuntimeError as exc:  # an ERROR report becomes RuntimeError when called from Python
        result["error"] = str(exc)
    finally:
        if case.get("no_colorspace"):
            compat.LINEAR_REC709_NAMES = saved
    result["load_seconds"] = time.perf_counter() - started
    result["unchanged"] = scene_state(scene) == before
    result["state"] = scene_state(scene)
    result["panel"] = panel_items(scene)
    if result["error"]:
        return result
    if case.get("material"):
        addon = sys.modules[ADDON_MODULE + ".scene_setup"]
        render = sys.modules[ADDON_MODULE + ".render_manifest"].read_render_folder(case["folder"])
        image = bpy.data.images[result["state"]["image"]["name"]]
        material = addon.add_material(image, render)
        texture = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage")
        user = texture.image_user
        result["material"] = {"name": material.name, "image": texture.image.name,
                               **{k: getattr(user, k) for k in ("frame_duration", "frame_start", "frame_offset",
                                                                "use_auto_refresh", "use_cyclic")}}
    if case.get("stills"):
        result["stills"] = render_stills(scene, case["stills"], out, case["name"])
    if case.get("encode"):
        # Load again: restores the video output the stills replaced, and shows a reload stacks nothing.
        bpy.ops.audio_cppn.load_render(directory=case["folder"], **case.get("options", {}))
        result["reloaded_state"] = scene_state(scene)
        bpy.ops.render.render(animation=True)
        result["video"] = bpy.path.abspath(scene.render.frame_path(frame=scene.frame_start))
    return result


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    report = {"version": list(bpy.app.version), "version_string": bpy.app.version_string,
              "audio": bool(getattr(bpy.app.build_options, "audaspace", True)),
              "install": install(spec["zip"]), "cases": {}}
    for case in spec["cases"]:
        report["cases"][case["name"]] = run_case(case, out)
    print("RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[-1])
