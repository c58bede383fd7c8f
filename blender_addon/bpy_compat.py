"""The few places where Blender 4.2–4.5 and 5.x differ, feature-detected in one module.

Each helper checks for the attribute it needs rather than the version number, so a later
release that keeps the newer API needs no change here.
"""

from __future__ import annotations

import bpy



class BlenderUnsupported(Exception):
    """This Blender lacks something the add-on needs; the message says what (reported, never raised at the user)."""


def has_audio() -> bool:
    """Whether this Blender can play and mix sound: the bpy 4.2 wheel from PyPI is built without Audaspace,
    so it cannot create sound strips or encode audio."""
    return bool(getattr(bpy.app.build_options, "audaspace", True))


# Names of the scene-linear Rec.709 colour space across OCIO configs (the role name last).
LINEAR_REC709_NAMES = ("Linear Rec.709", "Linear", "scene_linear")
SRGB_NAMES = ("sRGB",)


def compositor_tree(scene, *, create: bool = True):
    """The scene's compositing node tree; ``None`` when there is none and ``create`` is False.

    4.x keeps an embedded tree behind ``scene.use_nodes``; 5.0 made it a data-block that the scene
    points to through ``scene.compositing_node_group``.
    """
    if hasattr(scene, "compositing_node_group"):
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositor", "CompositorNodeTree")
            # The tree must belong to a scene before Render Layers nodes may be added to it.
            scene.compositing_node_group = tree
        if tree is not None:
            scene.render.use_compositing = True
        return tree
    if not scene.use_nodes and not create:
        return None
    scene.use_nodes = True  # 4.x creates the default tree (Render Layers -> Composite) here
    scene.render.use_compositing = True
    return scene.node_tree


def compositor_output_socket(tree):
    """The input socket whose image becomes the render result (Composite node or Group Output)."""
    if hasattr(bpy.types, "CompositorNodeComposite"):
        node = _active_node(tree, "CompositorNodeComposite")
        if node is None:
            node = tree.nodes.new("CompositorNodeComposite")
            node.location = (400, 0)
        return node.inputs["Image"]
    if not any(item.item_type == "SOCKET" and item.in_out == "OUTPUT" for item in tree.interface.items_tree):
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    node = _active_node(tree, "NodeGroupOutput")
    if node is None:
        node = tree.nodes.new("NodeGroupOutput")
        node.location = (400, 0)
    return node.inputs[0]


def _active_node(tree, idname: str):
    nodes = [n for n in tree.nodes if n.bl_idname == idname]
    active = [n for n in nodes if getattr(n, "is_active_output", False)]
    return (active or nodes or [None])[0]


def alpha_over_inputs(node):
    """(background, foreground) inputs of an Alpha Over node: named in 5.0, two "Image"s in 4.x."""
    if "Background" in node.inputs:
        return node.inputs["Background"], node.inputs["Foreground"]
    images = [s for s in node.inputs if s.type == "RGBA"]
    return images[0], images[1]


def colorspace_name(settings, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that this Blender's OCIO config offers for ``settings.name``."""
    available = {item.identifier for item in settings.bl_rna.properties["name"].enum_items}
    return next((name for name in names if name in available), None)


def set_colorspace(settings, names: tuple[str, ...]) -> str:
    """Set a colour space by the first available of ``names``; returns the name used."""
    name = colorspace_name(settings, names)
    if name is None:
        raise BlenderUnsupported(f"this Blender's colour management offers none of the colour spaces "
                                 f"{', '.join(names)}; use Blender's default OCIO config")
    settings.name = name
    return name


def sequencer_strips(scene):
    """The scene's top-level strip collection (``strips`` since 4.4, ``sequences`` before)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def set_movie_output(image_settings) -> None:
    """Make the render output a movie file: 5.0 filters file formats by ``media_type`` first."""
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "VIDEO"
    image_settings.file_format = "FFMPEG"


def material_node_tree(material):
    """The material's shader tree; 4.x needs ``use_nodes`` switched on, 5.0 always has one."""
    if material.node_tree is None:
        material.use_nodes = True
    return material.node_tree
