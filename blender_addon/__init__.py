"""Audio CPPN Blender add-on: load music-reactive CPPN renders into a scene (standard library + bpy only)."""

# Blender 4.2+ reads blender_manifest.toml; bl_info lets older Blenders (and the legacy
# "Install from disk" path) install the same zip.
bl_info = {
    "name": "Audio CPPN",
    "author": "Audio CPPN contributors",
    "version": (0, 1, 0),
    "blender": (3, 6, 0),  # legacy installs; 4.5 LTS and 5.0 are the tested versions
    "location": "Sidebar (N) > Audio CPPN, in the 3D Viewport, Sequencer and Compositor",
    "description": "Load music-reactive CPPN frame sequences with their sound, fps and video output",
    "category": "Import-Export",
}

# The modules import bpy; importing them inside register() keeps the package importable by plain
# Python, where the bpy-free modules (render_manifest, load_plan) are unit-tested.


def _modules():
    from . import operators, panels

    return (operators, panels)


def register():
    for module in _modules():
        module.register()


def unregister():
    for module in reversed(_modules()):
        module.unregister()
