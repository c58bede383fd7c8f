"""Sidebar tab "Audio CPPN" in the 3D viewport, the sequencer and the compositor."""

from __future__ import annotations

from pathlib import Path

import bpy

from .scene_setup import FOLDER_PROPERTY

CATEGORY = "Audio CPPN"


class AudioCPPNPanel:
    """Shared body; the subclasses only say which editor they live in."""

    bl_label = "Audio CPPN"
    bl_region_type = "UI"
    bl_category = CATEGORY

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        layout.operator("audio_cppn.load_render", icon="FILE_FOLDER")
        folder = scene.get(FOLDER_PROPERTY)
        if not folder:
            layout.label(text="No render loaded")
            return
        box = layout.box()
        box.label(text=Path(folder).name, icon="IMAGE_DATA")
        fps = scene.render.fps / scene.render.fps_base
        box.label(text=f"Frames {scene.frame_start}-{scene.frame_end} at {fps:.5g} fps")


class AUDIO_CPPN_PT_view3d(AudioCPPNPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class AUDIO_CPPN_PT_sequencer(AudioCPPNPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"


class AUDIO_CPPN_PT_compositor(AudioCPPNPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", None) == "CompositorNodeTree"


CLASSES = (AUDIO_CPPN_PT_view3d, AUDIO_CPPN_PT_sequencer, AUDIO_CPPN_PT_compositor)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
