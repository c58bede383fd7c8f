"""Audio CPPN Blender add-on: train styles, render music-reactive CPPN frames through the local backend,
and load them into the scene with their sound (standard library + bpy only)."""

# Blender 4.2+ reads blender_manifest.toml; bl_info lets the legacy "Install from disk" path install
# the same zip. 4.2 is the oldest Blender the add-on is tested on (with 4.5 and 5.0).
bl_info = {
    "name": "Audio CPPN",
    "author": "Audio CPPN contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Sidebar (N) > Audio CPPN, in the 3D Viewport, Sequencer and Compositor",
    "description": "Train and render music-reactive CPPN visuals with a local backend; load them with their sound",
    "category": "Import-Export",
}

# The modules import bpy; importing them inside register() keeps the package importable by plain
# Python, where the bpy-free modules (client, job_request, monitor, backend_process, render_manifest,
# load_plan) are unit-tested.


def _modules():
    from . import operators, panels, poller, prefs, previews, props

    return (prefs, props, previews, operators, panels, poller)


def register():
    for module in _modules():
        module.register()


def unregister():
    from . import connection

    for module in reversed(_modules()):
        module.unregister()
    connection.stop()  # never leave a backend we started holding the GPU
    connection.stop_monitor()
