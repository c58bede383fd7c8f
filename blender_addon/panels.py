"""Sidebar tab "Audio CPPN" in the 3D viewport, the sequencer and the compositor.

One main panel (backend status, style picker) and sub-panels Train, Render and Frames, the same
in each editor. Drawing never touches the network: it reads the monitor's last snapshot.
Errors sit next to the control that fixes them.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from . import connection, jobs, poller, previews
from .prefs import backend_settings, draw_backend_status
from .props import GAIN_FEATURES, sound_strip
from .scene_setup import FOLDER_PROPERTY

CATEGORY = "Audio CPPN"
SPACES = (("view3d", "VIEW_3D"), ("sequencer", "SEQUENCE_EDITOR"), ("compositor", "NODE_EDITOR"))


def _snapshot(context):
    monitor = connection.monitor(backend_settings(context))
    return monitor.snapshot() if monitor is not None else None


def draw_progress(layout, status, kind: str) -> None:
    """i/N, rate and ETA, a progress bar where this Blender has one, and Cancel."""
    row = layout.row(align=True)
    text = status.progress_text()
    if "progress" in bpy.types.UILayout.bl_rna.functions:
        row.progress(factor=status.fraction, type="BAR", text=text)
    else:
        row.label(text=f"{text} ({status.fraction:.0%})")
    row.operator("audio_cppn.cancel_job", text="", icon="CANCEL").kind = kind
    if status.message:
        layout.label(text=status.message)


def draw_error(layout, text: str) -> None:
    if text:
        row = layout.row()
        row.alert = True
        row.label(text=text, icon="ERROR")


def draw_main(self, context) -> None:
    layout = self.layout
    draw_backend_status(layout, context)
    draw_error(layout, poller.start_error[0])
    settings = context.scene.audio_cppn
    snapshot = _snapshot(context)
    box = layout.box()
    box.label(text="Style", icon="BRUSH_DATA")
    if snapshot is not None and snapshot.styles is not None:
        box.template_icon_view(settings, "style_pick", show_labels=True, scale=5.0)
    box.prop(settings, "style")
    info = previews.style_info(settings.style, snapshot)
    if info is not None:
        box.label(text=f"{info.get('kind') or 'style'}: {info.get('prompt') or '(no prompt)'}")
        for problem in info.get("problems") or []:
            draw_error(box, str(problem))


def draw_train(self, context) -> None:
    layout = self.layout
    settings = context.scene.audio_cppn
    col = layout.column()
    col.prop(settings, "prompt")
    col.prop(settings, "negative")
    col.prop(settings, "new_style_name")
    row = col.row(align=True)
    row.prop(settings, "steps")
    row.prop(settings, "seed")
    col.prop(settings, "resolutions")
    status = jobs.status_of(context.scene, "train", context)
    if status is not None and not status.finished:
        draw_progress(layout, status, "train")
        return
    row = layout.row()
    row.enabled = bool(settings.prompt.strip())
    row.operator("audio_cppn.train_style", icon="SHADERFX")
    if not settings.prompt.strip():
        layout.label(text="Type a prompt to train a style")
    draw_error(layout, settings.train_error)


def draw_render(self, context) -> None:
    layout = self.layout
    scene = context.scene
    settings = scene.audio_cppn
    col = layout.column()
    col.prop(settings, "audio_source", expand=True)
    if settings.audio_source == "STRIP":
        strip = sound_strip(scene)
        if strip is None:
            draw_error(col, "No sound strip — pick a file")
        else:
            col.label(text=f"{strip.name} from frame {int(strip.frame_start)}", icon="SOUND")
    else:
        col.prop(settings, "audio_file")
    col.prop(settings, "file_format", expand=True)
    col.prop(settings, "frame_range", expand=True)
    r = scene.render
    width, height = r.resolution_x * r.resolution_percentage // 100, r.resolution_y * r.resolution_percentage // 100
    col.label(text=f"{width}×{height} at {r.fps / r.fps_base:.5g} fps (scene output settings)")
    col.prop(settings, "output_folder")
    col.prop(settings, "overwrite")
    col.prop(settings, "load_into")
    box = layout.box()
    box.label(text="Reactivity")
    grid = box.grid_flow(columns=2, align=True)
    for name in ("amount", "morph", "swell", "pulse", "flash"):
        grid.prop(settings, name)
    grid = box.grid_flow(columns=3, align=True)
    for name in GAIN_FEATURES:
        grid.prop(settings, f"gain_{name}")
    status = jobs.status_of(scene, "render", context)
    if status is not None and not status.finished:
        draw_progress(layout, status, "render")
        return
    layout.operator("audio_cppn.render_frames", icon="RENDER_ANIMATION")
    draw_error(layout, settings.render_error)


def draw_frames(self, context) -> None:
    layout = self.layout
    scene = context.scene
    row = layout.row(align=True)
    row.operator("audio_cppn.load_frames", icon="IMAGE_DATA")
    row.operator("audio_cppn.encode_video", icon="FILE_MOVIE")
    layout.operator("audio_cppn.load_render", icon="FILE_FOLDER")
    folder = scene.get(FOLDER_PROPERTY)
    if not folder:
        layout.label(text="No render loaded")
        return
    box = layout.box()
    box.label(text=Path(folder).name, icon="IMAGE_DATA")
    fps = scene.render.fps / scene.render.fps_base
    box.label(text=f"Frames {scene.frame_start}-{scene.frame_end} at {fps:.5g} fps")


class _Panel:
    bl_region_type = "UI"
    bl_category = CATEGORY


def _compositor_only(cls, context):
    return getattr(context.space_data, "tree_type", None) == "CompositorNodeTree"


def _make_panels():
    classes = []
    for suffix, space in SPACES:
        main_id = f"AUDIO_CPPN_PT_{suffix}"
        poll = classmethod(_compositor_only) if space == "NODE_EDITOR" else None
        extra = {"poll": poll} if poll else {}
        classes.append(type(main_id, (_Panel, bpy.types.Panel), {
            "bl_idname": main_id, "bl_label": "Audio CPPN", "bl_space_type": space, "draw": draw_main, **extra}))
        for name, label, draw in (("train", "Train", draw_train), ("render", "Render", draw_render),
                                  ("frames", "Frames", draw_frames)):
            classes.append(type(f"{main_id}_{name}", (_Panel, bpy.types.Panel), {
                "bl_idname": f"{main_id}_{name}", "bl_label": label, "bl_space_type": space,
                "bl_parent_id": main_id, "draw": draw, **extra}))
    return tuple(classes)


CLASSES = _make_panels()

register, unregister = bpy.utils.register_classes_factory(CLASSES)  # unregisters in reverse order
