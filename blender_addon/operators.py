"""Operators: collect settings, call ``scene_setup``, report problems (never raise them at the user)."""

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import scene_setup
from .load_plan import LoadOptions
from .render_manifest import RenderFolderError

COMPOSITOR_ITEMS = (
    ("REPLACE", "Frames Only", "The frames are the picture: straight to the compositor output, the 3D scene "
     "is not rendered"),
    ("BACKGROUND", "Behind the Scene", "The scene's render (transparent film) goes over the frames"),
    ("NONE", "Leave Compositor", "Do not touch the compositor; use the image or the VSE strip yourself"),
)


class AUDIO_CPPN_OT_load_render(bpy.types.Operator):
    """Load a finished Audio CPPN render folder: frames, sound strip, fps, frame range and video output"""

    bl_idname = "audio_cppn.load_render"
    bl_label = "Load Render"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Render Folder", subtype="DIR_PATH",
                              description="Folder written by 'audio-cppn render', holding manifest.json")
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    compositor: EnumProperty(name="Compositor", items=COMPOSITOR_ITEMS, default="REPLACE",
                             description="How the frames enter the compositor")
    sound: BoolProperty(name="Sound Strip", default=True,
                        description="Add the render's audio as a sound strip at its start frame")
    image_strip: BoolProperty(name="VSE Image Strip", default=False,
                              description="Also add the frames as a sequencer strip (the sequencer then "
                              "makes the final picture instead of the compositor)")
    standard_view: BoolProperty(name="Standard View", default=True,
                                description="Use the Standard view transform so the frames keep their colours")
    video_output: BoolProperty(name="Video Output", default=True,
                               description="Set the output to an H.264 + AAC MP4 next to the render folder")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        options = LoadOptions(compositor=self.compositor, sound=self.sound, image_strip=self.image_strip,
                              standard_view=self.standard_view, video_output=self.video_output)
        try:
            result = scene_setup.load_render(context.scene, bpy.path.abspath(self.directory), options)
        except RenderFolderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Loaded frames {result.first}-{result.last}"
                    + (" with sound" if result.sound_strip else " without sound"))
        return {"FINISHED"}


CLASSES = (AUDIO_CPPN_OT_load_render,)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
