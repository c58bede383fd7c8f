"""The scene's Audio CPPN settings: one PropertyGroup on ``Scene.audio_cppn``, with ``to_request()``.

Job ids live here too, so a .blend reopened while a job runs re-attaches to it.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from . import bpy_compat, job_request, previews
from .prefs import DEFAULT_OUTPUT, preferences

# Feature names the backend knows (backend/audio/names.py; the add-on imports nothing from it).
GAIN_FEATURES = ("sub", "bass", "low_mid", "high_mid", "treble", "rms", "onset", "beat_pulse", "centroid",
                 "percussive", "harmonic")


def _style_items(self, context):
    return previews.enum_items()


def _pick_style(self, context):
    if self.style_pick and self.style_pick != previews.NONE_ID:
        self.style = self.style_pick


class AudioCPPNSettings(bpy.types.PropertyGroup):
    # style
    style: StringProperty(name="Style", default="aurora", description="Name of the style to render with")
    style_pick: EnumProperty(name="Style", items=_style_items, update=_pick_style,
                             description="The backend's style library")
    # training
    prompt: StringProperty(name="Prompt", default="", description="What the new style should look like")
    negative: StringProperty(name="Negative", default="", description="What to steer away from")
    new_style_name: StringProperty(name="Name", default="",
                                   description="File name of the new style (empty: from the prompt)")
    steps: IntProperty(name="Steps", default=800, min=1, max=100000)
    resolutions: StringProperty(name="Resolutions", default="256,512",
                                description="Cutout sizes per stage, coarse to fine, e.g. 256,512")
    seed: IntProperty(name="Seed", default=0, min=0)
    # render
    audio_source: EnumProperty(name="Audio", items=(
        ("STRIP", "Sound Strip", "The scene's sound strip, where it starts"),
        ("FILE", "File", "An audio file, starting at the scene's first frame")), default="STRIP")
    audio_file: StringProperty(name="Audio File", default="", subtype="FILE_PATH")
    file_format: EnumProperty(name="Format", items=(
        ("EXR", "EXR", "Half-float scene-linear (best for compositing)"),
        ("PNG", "PNG", "8-bit sRGB (smaller)")), default="EXR")
    frame_range: EnumProperty(name="Frames", items=(
        ("SCENE", "Scene Range", "The scene's start to end frame"),
        ("TRACK", "Whole Track", "Every frame of the audio")), default="SCENE")
    output_folder: StringProperty(name="Output", default="", subtype="DIR_PATH",
                                  description="Render folder's parent (empty: the preferences' output folder)")
    overwrite: BoolProperty(name="Replace Frames", default=False,
                            description="Re-render a folder that holds frames of other settings")
    load_into: EnumProperty(name="Show In", items=(
        ("COMPOSITOR", "Compositor", "The frames become the render's picture"),
        ("MATERIAL", "Material", "An image texture on the active object's material"),
        ("SEQUENCER", "Sequencer", "An image strip above the sound strip")), default="COMPOSITOR")
    amount: FloatProperty(name="Amount", default=1.0, min=0.0, max=10.0, description="How much the music moves it")
    morph: FloatProperty(name="Morph", default=1.0, min=0.0, max=10.0)
    swell: FloatProperty(name="Swell", default=0.35, min=0.0, max=10.0)
    pulse: FloatProperty(name="Pulse", default=0.6, min=0.0, max=10.0)
    flash: FloatProperty(name="Flash", default=0.35, min=0.0, max=10.0)
    gain_sub: FloatProperty(name="Sub", default=1.0, min=0.0, max=10.0)
    gain_bass: FloatProperty(name="Bass", default=1.0, min=0.0, max=10.0)
    gain_low_mid: FloatProperty(name="Low Mid", default=1.0, min=0.0, max=10.0)
    gain_high_mid: FloatProperty(name="High Mid", default=1.0, min=0.0, max=10.0)
    gain_treble: FloatProperty(name="Treble", default=1.0, min=0.0, max=10.0)
    gain_rms: FloatProperty(name="Loudness", default=1.0, min=0.0, max=10.0)
    gain_onset: FloatProperty(name="Onset", default=1.0, min=0.0, max=10.0)
    gain_beat_pulse: FloatProperty(name="Beat", default=1.0, min=0.0, max=10.0)
    gain_centroid: FloatProperty(name="Brightness", default=1.0, min=0.0, max=10.0)
    gain_percussive: FloatProperty(name="Drums", default=1.0, min=0.0, max=10.0,
                                   description="How much the drums (the percussive part) move the pattern")
    gain_harmonic: FloatProperty(name="Harmony", default=1.0, min=0.0, max=10.0,
                                 description="How much the harmony's loudness (the harmonic part) moves the pattern")
    # jobs: stored in the .blend so reopening it re-attaches
    render_job: StringProperty(name="Render Job", default="", options={"HIDDEN"})
    train_job: StringProperty(name="Training Job", default="", options={"HIDDEN"})
    render_error: StringProperty(default="", options={"HIDDEN"})
    train_error: StringProperty(default="", options={"HIDDEN"})
    render_folder: StringProperty(default="", options={"HIDDEN"}, description="The last render's folder")
    loaded_frames: IntProperty(default=0, options={"HIDDEN"}, description="Frames on disk at the last refresh")

    def render_settings(self, scene) -> job_request.RenderSettings:
        """The scene's render settings as plain values (paths absolute)."""
        audio, start = audio_source(scene, self)
        strip = sound_strip(scene) if self.audio_source == "STRIP" else None
        r = scene.render
        return job_request.RenderSettings(
            audio=audio, audio_start=start, audio_frames=int(strip.frame_duration) if strip else None,
            style=self.style, output=str(render_folder(scene, self)),
            fps=r.fps, fps_base=r.fps_base, resolution_x=r.resolution_x, resolution_y=r.resolution_y,
            percentage=r.resolution_percentage,
            frame_range=(scene.frame_start, scene.frame_end) if self.frame_range == "SCENE" else None,
            file_format=self.file_format.lower(),
            reactivity={k: getattr(self, k) for k in job_request.REACTIVITY_FIELDS},
            gains={k: getattr(self, f"gain_{k}") for k in GAIN_FEATURES}, overwrite=self.overwrite)

    def to_request(self, scene=None, **extra) -> dict:
        """The service's render request body; raises ``job_request.SettingsError`` with what to fix.
        ``extra``: more request fields (scripts, tests), ``output`` replacing the render folder."""
        settings = self.render_settings(scene or self.id_data)
        if "output" in extra:
            settings.output = str(extra.pop("output"))
        return {**job_request.render_request(settings), **extra}

    def train_request(self, **extra) -> dict:
        return job_request.train_request(job_request.TrainSettings(
            prompt=self.prompt, name=self.new_style_name, negative=self.negative, steps=self.steps,
            resolutions=self.resolutions, seed=self.seed, extra=extra))


def sound_strip(scene):
    """The scene's first sound strip (lowest channel, then earliest), or None."""
    if scene.sequence_editor is None:
        return None
    sounds = [s for s in bpy_compat.sequencer_strips(scene) if s.type == "SOUND" and s.sound is not None]
    return min(sounds, key=lambda s: (s.channel, s.frame_start), default=None)


def audio_source(scene, settings) -> tuple[str, int]:
    """(absolute audio path, scene frame where it starts); path "" when there is none."""
    if settings.audio_source == "STRIP":
        strip = sound_strip(scene)
        if strip is None:
            return "", scene.frame_start
        return str(Path(bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)).resolve()), \
            int(strip.frame_start)
    if not settings.audio_file:
        return "", scene.frame_start
    return str(Path(bpy.path.abspath(settings.audio_file)).resolve()), scene.frame_start


def render_folder(scene, settings) -> Path:
    """``<output folder>/<scene>_<style>``: one folder per scene and style."""
    parent = settings.output_folder
    if not parent:
        prefs = preferences()
        parent = prefs.output_folder if prefs is not None else DEFAULT_OUTPUT
    if parent.startswith("//") and not bpy.data.filepath:
        return Path("")  # relative to an unsaved .blend: the request says to save first
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{scene.name}_{settings.style}")
    return Path(bpy.path.abspath(parent)).resolve() / safe


CLASSES = (AudioCPPNSettings,)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.audio_cppn = PointerProperty(type=AudioCPPNSettings)


def unregister():
    del bpy.types.Scene.audio_cppn
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
