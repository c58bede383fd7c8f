"""Operators: collect settings, call ``jobs`` / ``scene_setup``, report problems (never raise them at the user).

In background mode (``blender -b``) timers do not run, so the job operators wait for their job,
polling the service and printing progress; in the UI they return at once and the timer follows.
"""

import json
import traceback

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import connection, jobs, scene_setup
from .bpy_compat import BlenderUnsupported
from .client import ClientError
from .job_request import SettingsError
from .load_plan import LoadOptions
from .prefs import backend_settings
from .render_manifest import RenderFolderError

USER_ERRORS = (ClientError, SettingsError, RenderFolderError, BlenderUnsupported)

COMPOSITOR_ITEMS = (
    ("REPLACE", "Frames Only", "The frames are the picture: straight to the compositor output, the 3D scene "
     "is not rendered"),
    ("BACKGROUND", "Behind the Scene", "The scene's render (transparent film) goes over the frames"),
    ("NONE", "Leave Compositor", "Do not touch the compositor; use the image or the VSE strip yourself"),
)
KIND_ITEMS = (("render", "Render", ""), ("train", "Training", ""))


def reporting(execute):
    """Turn user problems into ``self.report`` (and an unexpected failure into one line plus the console
    traceback) instead of a Python traceback in the user's face."""

    def wrapper(self, context):
        try:
            return execute(self, context)
        except USER_ERRORS as exc:
            self.report({"ERROR"}, jobs.user_words(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug of ours: one line for the user, details in the console
            traceback.print_exc()
            self.report({"ERROR"}, f"Audio CPPN failed unexpectedly: {exc} (details in the system console)")
        return {"CANCELLED"}

    return wrapper


def _extra(text: str) -> dict:
    """More request fields as JSON (scripts and tests: e.g. a local CLIP model for training)."""
    if not text:
        return {}
    try:
        extra = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"options must be a JSON object ({exc})") from None
    if not isinstance(extra, dict):
        raise SettingsError("options must be a JSON object")
    return extra


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

    @reporting
    def execute(self, context):
        options = LoadOptions(compositor=self.compositor, sound=self.sound, image_strip=self.image_strip,
                              standard_view=self.standard_view, video_output=self.video_output)
        result = scene_setup.load_render(context.scene, bpy.path.abspath(self.directory), options)
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Loaded frames {result.first}-{result.last}"
                    + (" with sound" if result.sound_strip else " without sound"))
        return {"FINISHED"}


class AUDIO_CPPN_OT_start_backend(bpy.types.Operator):
    """Start the Audio CPPN backend (audio-cppn serve) as a child of Blender; it stops when Blender quits"""

    bl_idname = "audio_cppn.start_backend"
    bl_label = "Start Backend"

    @reporting
    def execute(self, context):
        settings = backend_settings(context)
        if bpy.app.background:
            api = connection.start(settings, wait=True)
            self.report({"INFO"}, f"Backend running at {api.url}")
        else:
            connection.start(settings, wait=False)
            self.report({"INFO"}, "Starting the backend…")
        return {"FINISHED"}


class AUDIO_CPPN_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender started (its running job resumes when it starts again)"""

    bl_idname = "audio_cppn.stop_backend"
    bl_label = "Stop Backend"

    @reporting
    def execute(self, context):
        if not connection.stop():
            self.report({"WARNING"}, "This Blender did not start the backend; stop it where it was started")
            return {"CANCELLED"}
        self.report({"INFO"}, "Backend stopped")
        return {"FINISHED"}


class AUDIO_CPPN_OT_release_gpu(bpy.types.Operator):
    """Ask the backend to drop its cached models and free GPU memory"""

    bl_idname = "audio_cppn.release_gpu"
    bl_label = "Release GPU"

    @reporting
    def execute(self, context):
        jobs.client(context, start=False).release()
        self.report({"INFO"}, "GPU memory released")
        return {"FINISHED"}


class AUDIO_CPPN_OT_train_style(bpy.types.Operator):
    """Train a new style from the prompt (CLIP guidance on the backend)"""

    bl_idname = "audio_cppn.train_style"
    bl_label = "Train"

    options: StringProperty(name="Options", default="", options={"HIDDEN", "SKIP_SAVE"},
                            description="More training settings as JSON, e.g. {\"clip_model\": \"local-dir:...\"}")

    @reporting
    def execute(self, context):
        scene = context.scene
        status = jobs.active_job(scene, "train", context)
        if status is None:
            status = jobs.submit(scene, "train", scene.audio_cppn.train_request(**_extra(self.options)), context)
        if bpy.app.background:
            return self._finish(jobs.wait(scene, "train", status, context))
        self.report({"INFO"}, f"Training {status.request.get('name') or ''} queued")
        return {"FINISHED"}

    def _finish(self, status):
        if status.state != "done":
            self.report({"ERROR"}, f"Training {status.state}: {status.error_text() or 'cancelled'}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Trained style {bpy.context.scene.audio_cppn.style}")
        return {"FINISHED"}


class AUDIO_CPPN_OT_render_frames(bpy.types.Operator):
    """Render the scene's track with the chosen style; the frames load while they arrive"""

    bl_idname = "audio_cppn.render_frames"
    bl_label = "Render"

    options: StringProperty(name="Options", default="", options={"HIDDEN", "SKIP_SAVE"},
                            description="More render settings as JSON")

    @reporting
    def execute(self, context):
        scene = context.scene
        status = jobs.active_job(scene, "render", context)  # re-attach to a job still running
        if status is None:
            body = scene.audio_cppn.to_request(scene, **_extra(self.options))
            status = jobs.submit(scene, "render", body, context)
        if not bpy.app.background:
            self.report({"INFO"}, "Render queued")
            return {"FINISHED"}
        final = jobs.wait(scene, "render", status, context)
        if final.state != "done":
            self.report({"ERROR"}, f"Render {final.state}: {jobs.user_words(final.error_text()) or 'cancelled'}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Rendered {final.total or final.done} frames into {scene.audio_cppn.render_folder}")
        return {"FINISHED"}


class AUDIO_CPPN_OT_cancel_job(bpy.types.Operator):
    """Cancel the scene's render or training (finished frames and checkpoints are kept)"""

    bl_idname = "audio_cppn.cancel_job"
    bl_label = "Cancel"

    kind: EnumProperty(name="Job", items=KIND_ITEMS, default="render")

    @reporting
    def execute(self, context):
        job_id = getattr(context.scene.audio_cppn, f"{self.kind}_job")
        if not job_id:
            self.report({"WARNING"}, f"No {self.kind} job to cancel")
            return {"CANCELLED"}
        jobs.client(context, start=False).cancel(job_id)
        self.report({"INFO"}, f"Cancelling the {self.kind}")
        return {"FINISHED"}


class AUDIO_CPPN_OT_load_frames(bpy.types.Operator):
    """Load the scene's rendered frames (so far) into the compositor, a material or the sequencer"""

    bl_idname = "audio_cppn.load_frames"
    bl_label = "Load Frames"
    bl_options = {"REGISTER", "UNDO"}

    @reporting
    def execute(self, context):
        scene = context.scene
        status = None
        if scene.audio_cppn.render_job:
            try:
                status = jobs.parse_job(jobs.client(context, start=False).job(scene.audio_cppn.render_job))
            except ClientError:
                status = None  # backend gone: load what is finished on disk
        result = jobs.load_frames(scene, status)
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Loaded frames {result.first}-{result.last} ({result.frames_on_disk} on disk)")
        return {"FINISHED"}


class AUDIO_CPPN_OT_encode_video(bpy.types.Operator):
    """Encode the final MP4 (H.264 + AAC from the scene's sound): Blender renders the animation"""

    bl_idname = "audio_cppn.encode_video"
    bl_label = "Encode Video"

    @reporting
    def execute(self, context):
        path = jobs.encode_video(context.scene, background=bpy.app.background)
        self.report({"INFO"}, f"Encoding {path}")
        return {"FINISHED"}


CLASSES = (AUDIO_CPPN_OT_load_render, AUDIO_CPPN_OT_start_backend, AUDIO_CPPN_OT_stop_backend,
           AUDIO_CPPN_OT_release_gpu, AUDIO_CPPN_OT_train_style, AUDIO_CPPN_OT_render_frames,
           AUDIO_CPPN_OT_cancel_job, AUDIO_CPPN_OT_load_frames, AUDIO_CPPN_OT_encode_video)

register, unregister = bpy.utils.register_classes_factory(CLASSES)  # unregisters in reverse order
