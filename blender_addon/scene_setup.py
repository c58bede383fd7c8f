"""Set a Blender scene up from a checked render folder: image sequence, compositor, sound, fps, output.

``load_render(scene, folder)`` is the whole job for headless ``blender -b`` scripts; the operator
calls the same function. Every check runs first (``load_plan``), so a failure changes nothing.
The sequence is mapped so that scene frame N always shows file N (the backend names frames by
scene frame), whatever the render's first frame is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import bpy_compat
from .load_plan import LoadOptions, LoadPlan, plan_load
from .render_manifest import RenderInfo, blender_fps

NAME = "Audio CPPN"  # prefix of everything we create, so a second load replaces it
FOLDER_PROPERTY = "audio_cppn_folder"  # scene custom property: the loaded render folder
_OUTPUT_NODES = {"CompositorNodeComposite", "NodeGroupOutput", "CompositorNodeOutputFile"}


@dataclass
class LoadResult:
    """What ``load_render`` put into the scene."""

    image: object  # the bpy Image (source SEQUENCE)
    first: int  # first scene frame of the sequence
    last: int  # last scene frame of the sequence
    sound_strip: object | None  # the sound strip, or None when the audio is missing or not wanted
    image_strip: object | None  # the VSE image strip, when asked for
    video_path: Path | None  # where Blender's FFmpeg encode will go, when configured
    warnings: list[str] = field(default_factory=list)  # problems worth a WARNING report
    material: object | None = None  # the material showing the frames, when asked for
    frames_on_disk: int = 0  # frames written so far (all of them once a render finished)


def load_render(scene, folder, options: LoadOptions | None = None) -> LoadResult:
    """Load the render in ``folder`` into ``scene``; raises ``RenderFolderError`` before any change."""
    return apply_plan(scene, plan_load(folder, options))


def apply_plan(scene, plan: LoadPlan) -> LoadResult:
    """Carry out a checked plan: image, timing, view, compositor, strips, output, in that order."""
    render, options = plan.render, plan.options
    image = load_image_sequence(render)
    if options.timing:
        set_timing(scene, render)
    if options.standard_view:
        set_standard_view(scene)
    if options.compositor != "NONE":
        setup_compositor(scene, image, render, background=options.compositor == "BACKGROUND")
    # A second load replaces what the first one added, rather than stacking strips.
    remove_strips(scene, f"{NAME} Sound")
    remove_strips(scene, f"{NAME} Frames")
    warnings = list(plan.warnings)
    sound = None
    if plan.audio and not bpy_compat.has_audio():
        warnings.append("this Blender is built without audio (Audaspace), so no sound strip was added and the "
                        "encode has no sound; use a Blender from blender.org")
    elif plan.audio:
        sound = add_sound_strip(scene, plan.audio, render.frame_start)
    strip = None
    if options.image_strip:
        strip = add_image_strip(scene, render, plan.frame_paths, above=_sound_channel(scene, render.frame_start))
    material = None
    if options.material:
        material = add_material(image, render)
        show_on_active_object(scene, material)
    if options.video_output:
        set_video_output(scene, plan.video_path, render.audio_channels if bpy_compat.has_audio() else 0)
    scene[FOLDER_PROPERTY] = str(render.folder)
    return LoadResult(image=image, first=render.first, last=render.last, sound_strip=sound, image_strip=strip,
                      video_path=plan.video_path if options.video_output else None, warnings=warnings,
                      material=material, frames_on_disk=plan.frames_on_disk)


def load_image_sequence(render: RenderInfo):
    """The frames as one Image data-block (reused when the same files are loaded again)."""
    image = bpy.data.images.load(str(render.frame_path(render.first)), check_existing=True)
    image.source = "SEQUENCE"
    image.name = f"{NAME} {render.folder.name}"
    # EXR holds scene-linear Rec.709 (premultiplied, the EXR convention); PNG holds sRGB, straight alpha.
    if render.file_format == "exr":
        bpy_compat.set_colorspace(image.colorspace_settings, bpy_compat.LINEAR_REC709_NAMES)
        image.alpha_mode = "PREMUL"
    else:
        bpy_compat.set_colorspace(image.colorspace_settings, bpy_compat.SRGB_NAMES)
        image.alpha_mode = "STRAIGHT"
    image.reload()  # files may have been re-rendered since an earlier load
    return image


def set_sequence_user(user, render: RenderInfo) -> None:
    """Map scene frames to files on an image user (a node, or a node's ``image_user``).

    Blender shows file ``scene_frame - frame_start + 1 + frame_offset``; with ``frame_start =
    first`` and ``frame_offset = first - 1`` that is file ``scene_frame``. Sequence detection
    leaves the duration at 1, so it is set explicitly too.
    """
    user.frame_duration = render.frame_count
    user.frame_start = render.first
    user.frame_offset = render.first - 1
    user.use_cyclic = False
    user.use_auto_refresh = True


def set_timing(scene, render: RenderInfo) -> None:
    """Scene fps, frame range and resolution from the manifest; playback follows the audio clock."""
    r = scene.render
    r.fps, r.fps_base = blender_fps(render.fps)
    scene.frame_start = render.first  # pushes frame_end up when needed, so set before it
    scene.frame_end = render.last
    scene.frame_current = render.first
    scene.sync_mode = "AUDIO_SYNC"
    r.resolution_x, r.resolution_y = render.width, render.height
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0


def set_standard_view(scene) -> None:
    """Standard view transform: scene-linear pixels go back to exactly the colours the backend drew
    (the default AgX/Filmic would tone-map them)."""
    view = scene.view_settings
    scene.display_settings.display_device = "sRGB"
    view.view_transform = "Standard"
    view.look = "None"
    view.exposure = 0.0
    view.gamma = 1.0
    view.use_curve_mapping = False


def setup_compositor(scene, image, render: RenderInfo, *, background: bool = False):
    """Wire the frames into the compositor; returns the Image node.

    Default: the frames go straight to the output and unused Render Layers nodes are muted, so
    Blender skips rendering the 3D scene (the frames *are* the picture; encoding is fast).
    ``background``: the scene's render (transparent film) goes over the frames instead.
    """
    tree = bpy_compat.compositor_tree(scene)
    frames = _named_node(tree, "CompositorNodeImage", f"{NAME} Frames", (-300, 0))
    frames.image = image
    set_sequence_user(frames, render)
    output = bpy_compat.compositor_output_socket(tree)
    if background:
        layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None)
        if layers is None:
            layers = tree.nodes.new("CompositorNodeRLayers")
            layers.location = (-300, 300)
        layers.mute = False
        over = _named_node(tree, "CompositorNodeAlphaOver", f"{NAME} Over", (100, 0))
        back, front = bpy_compat.alpha_over_inputs(over)
        tree.links.new(frames.outputs["Image"], back)
        tree.links.new(layers.outputs["Image"], front)
        tree.links.new(over.outputs["Image"], output)
        scene.render.film_transparent = True
    else:
        tree.links.new(frames.outputs["Image"], output)
        if tree.nodes.get(f"{NAME} Over") is not None:  # left by an earlier BACKGROUND load
            tree.nodes.remove(tree.nodes[f"{NAME} Over"])
        for viewer in [n for n in tree.nodes if n.bl_idname == "CompositorNodeViewer"]:
            tree.links.new(frames.outputs["Image"], viewer.inputs[0])  # the backdrop shows the frames
        for node in tree.nodes:
            if node.bl_idname == "CompositorNodeRLayers" and not _feeds_an_output(node):
                node.mute = True
    return frames


def _feeds_an_output(node) -> bool:
    """Whether a path of links leads from ``node`` to an output (Composite, Group Output, File Output)."""
    seen, stack = {node.name}, [node]
    while stack:
        for socket in stack.pop().outputs:
            for link in socket.links:
                if link.to_node.bl_idname in _OUTPUT_NODES:
                    return True
                if link.to_node.name not in seen:
                    seen.add(link.to_node.name)
                    stack.append(link.to_node)
    return False


def _named_node(tree, idname: str, name: str, location):
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != idname:
        node = tree.nodes.new(idname)
        node.name = node.label = name
        node.location = location
    return node


def add_sound_strip(scene, path: Path, frame_start: int):
    """The audio as a sound strip whose first sample plays at scene frame ``frame_start``."""
    strips = bpy_compat.sequencer_strips(scene)
    channel = _free_channel(strips, frame_start, 1 << 30)  # its length is known only once loaded
    return strips.new_sound(f"{NAME} Sound", str(path), channel, frame_start)


def add_image_strip(scene, render: RenderInfo, frame_paths: list[Path], *, above: int = 0):
    """The frames as a VSE image strip, one element per frame, starting at ``render.first``, in the
    lowest free channel above ``above`` (the sound strip's).

    While a sequencer has image strips, Blender renders the sequencer instead of the compositor.
    """
    strips = bpy_compat.sequencer_strips(scene)
    channel = _free_channel(strips, render.first, render.last, lowest=above + 1)
    strip = strips.new_image(f"{NAME} Frames", str(frame_paths[0]), channel, render.first)
    for path in frame_paths[1:]:
        strip.elements.append(path.name)
    names = bpy_compat.LINEAR_REC709_NAMES if render.file_format == "exr" else bpy_compat.SRGB_NAMES
    bpy_compat.set_colorspace(strip.colorspace_settings, names)
    strip.alpha_mode = "PREMUL" if render.file_format == "exr" else "STRAIGHT"
    return strip


def remove_strips(scene, name: str) -> None:
    if scene.sequence_editor is None:
        return
    strips = bpy_compat.sequencer_strips(scene)
    for strip in [s for s in strips if s.name == name]:
        strips.remove(strip)


def _free_channel(strips, first: int, last: int, *, lowest: int = 1) -> int:
    """The lowest channel from ``lowest`` up with no strip overlapping frames first..last."""
    busy = {s.channel for s in strips if s.frame_final_start <= last and s.frame_final_end > first}
    return next(c for c in range(max(1, lowest), 129) if c not in busy)


def _sound_channel(scene, frame_start: int) -> int:
    """The channel of the sound strip that starts at ``frame_start`` (else any sound strip; 0 if none)."""
    if scene.sequence_editor is None:
        return 0
    sounds = [s for s in bpy_compat.sequencer_strips(scene) if s.type == "SOUND"]
    matching = [s for s in sounds if int(s.frame_start) == frame_start] or sounds
    return min((s.channel for s in matching), default=0)


def set_video_output(scene, path: Path, audio_channels: int) -> None:
    """Blender's FFmpeg output: MP4 with H.264 video and AAC audio (none when ``audio_channels`` is 0)."""
    r = scene.render
    bpy_compat.set_movie_output(r.image_settings)
    r.image_settings.color_mode = "RGB"
    ff = r.ffmpeg
    ff.format = "MPEG4"
    ff.codec = "H264"
    ff.constant_rate_factor = "HIGH"
    ff.ffmpeg_preset = "GOOD"
    ff.audio_codec = "AAC" if audio_channels else "NONE"
    ff.audio_bitrate = 192
    ff.audio_channels = "MONO" if audio_channels == 1 else "STEREO"
    r.use_file_extension = True
    r.filepath = str(path)


def show_on_active_object(scene, material) -> object | None:
    """Put ``material`` on the active object (its active slot, or a first slot); None without one."""
    obj = bpy.context.view_layer.objects.active if bpy.context.view_layer else None
    if obj is None or obj.type not in {"MESH", "CURVE", "SURFACE", "META", "FONT"} or obj.data is None:
        return None
    if not obj.material_slots:
        obj.data.materials.append(material)
    elif obj.active_material is not material:
        obj.active_material = material
    return obj


def add_material(image, render: RenderInfo, name: str | None = None):
    """A material that shows the frames as emitted light (a screen), in sync with the scene frame.

    Loading again rebuilds the same material's nodes: no second material, no stacked nodes.
    """
    material = bpy.data.materials.get(name or f"{NAME} {render.folder.name}")
    if material is None:
        material = bpy.data.materials.new(name or f"{NAME} {render.folder.name}")
    tree = bpy_compat.material_node_tree(material)
    tree.nodes.clear()
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    set_sequence_user(texture.image_user, render)
    texture.location = (-400, 0)
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    output.location = (250, 0)
    tree.links.new(texture.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material
