"""Add-on preferences: how to reach the backend, where renders and styles go, Start/Stop buttons."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from . import connection

DEFAULT_OUTPUT = "//audio_cppn/"


class AudioCPPNPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__  # "audio_cppn" as a legacy add-on, "bl_ext.<repo>.audio_cppn" as an extension

    backend_command: StringProperty(
        name="Backend Command", default="audio-cppn", subtype="FILE_PATH",
        description="The audio-cppn command, or a Python interpreter that has the backend installed")
    data_dir: StringProperty(
        name="Data Folder", default="", subtype="DIR_PATH",
        description="The backend's data folder (jobs, token, logs, server.json); empty: the platform default")
    start_automatically: BoolProperty(
        name="Start Automatically", default=False,
        description="Start the backend when an Audio CPPN action needs it and none is running")
    attach_url: StringProperty(
        name="Server URL", default="",
        description="Attach to a server that is already running, e.g. http://127.0.0.1:8765 "
                    "(empty: find it through the data folder's server.json)")
    attach_token: StringProperty(name="Token", default="", subtype="PASSWORD",
                                 description="The attached server's token (its token file)")
    output_folder: StringProperty(
        name="Output Folder", default=DEFAULT_OUTPUT, subtype="DIR_PATH",
        description="Where renders go by default; // is the .blend file's folder")
    styles_dir: StringProperty(
        name="Style Library", default="", subtype="DIR_PATH",
        description="Folder of style files for a backend the add-on starts (empty: the backend's default)")

    def draw(self, context):
        layout = self.layout
        draw_backend_status(layout, context)
        col = layout.column()
        col.prop(self, "backend_command")
        col.prop(self, "data_dir")
        col.prop(self, "start_automatically")
        col.prop(self, "styles_dir")
        col.prop(self, "output_folder")
        box = layout.box()
        box.label(text="Attach to a running server (optional)")
        box.prop(self, "attach_url")
        box.prop(self, "attach_token")


def preferences(context=None) -> AudioCPPNPreferences | None:
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def backend_settings(context=None) -> connection.BackendSettings:
    prefs = preferences(context)
    if prefs is None:  # batch.py before registration, or unusual contexts: the defaults
        return connection.BackendSettings()
    return connection.BackendSettings(command=prefs.backend_command, data_dir=bpy.path.abspath(prefs.data_dir),
                                      styles_dir=bpy.path.abspath(prefs.styles_dir),
                                      attach_url=prefs.attach_url, attach_token=prefs.attach_token)


def draw_backend_status(layout, context) -> None:
    """The status line and the button that fixes what is wrong (shared by prefs and the sidebar)."""
    monitor = connection.monitor(backend_settings(context))
    snapshot = monitor.snapshot() if monitor is not None else None
    row = layout.row(align=True)
    if snapshot is not None and snapshot.connected:
        row.label(text=snapshot.status, icon="CHECKMARK")
        row.operator("audio_cppn.release_gpu", text="Release GPU", icon="TRASH")
        if connection.we_started_it():
            row.operator("audio_cppn.stop_backend", text="Stop", icon="PAUSE")
        return
    if connection.starting():
        row.label(text="Starting the backend…", icon="SORTTIME")
        return
    status = snapshot.status if snapshot is not None and snapshot.time else "Backend not running"
    row.label(text=status, icon="ERROR")
    row.operator("audio_cppn.start_backend", text="Start", icon="PLAY")
    if snapshot is not None and snapshot.fix and snapshot.fix != status:
        layout.label(text=snapshot.fix)


CLASSES = (AudioCPPNPreferences,)

register, unregister = bpy.utils.register_classes_factory(CLASSES)  # unregisters in reverse order
