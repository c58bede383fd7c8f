"""The add-on's bpy-free side: reading a real backend render folder, fps for Blender, load checks."""

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from backend.render.job import RenderConfig, render
from blender_addon.load_plan import LoadOptions, describe_frames, plan_load
from blender_addon.render_manifest import RenderFolderError, blender_fps, parse_fps, read_render_folder
from tests.helpers.signals import pulse_train, tone, write_audio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A real render: 29.97 fps from scene frame 10, PNG, only frames 12-20 of the track."""
    folder = tmp_path_factory.mktemp("addon")
    y, _ = pulse_train(120, sr=22050, duration=1.0)
    audio = write_audio(folder / "beat.wav", y, 22050)
    out = folder / "render"
    render(audio, ROOT / "styles" / "aurora.safetensors", out,
           config=RenderConfig(width=32, height=18, fps=Fraction(30000, 1001), frame_start=10, frames=(12, 20),
                               format="png", prefix="cppn."))
    return out, audio


def copy_render(rendered, tmp_path, name="copy"):
    folder, _ = rendered
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def edit_manifest(folder, **changes):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    path.write_text(json.dumps(data))


def test_reads_what_the_backend_wrote(rendered):
    folder, audio = rendered
    info = read_render_folder(folder)
    assert info.fps == Fraction(30000, 1001)
    assert (info.width, info.height, info.frame_start) == (32, 18, 10)
    assert (info.first, info.last, info.frame_count) == (12, 20, 9)
    assert (info.file_format, info.prefix, info.alpha) == ("png", "cppn.", False)
    assert info.audio_path == audio.resolve()
    assert info.style_name == "aurora"
    assert info.frame_name(12) == "cppn.000012.png"
    on_disk = sorted(p.name for p in folder.glob("cppn.*.png"))
    assert on_disk == [info.frame_name(n) for n in range(12, 21)]


@pytest.mark.parametrize("text,expected", [
    ("24", (24, 1.0)), ("25", (25, 1.0)), ("30", (30, 1.0)), ("60", (60, 1.0)),
    ("30000/1001", (30, 1.001)), ("24000/1001", (24, 1.001)), ("60000/1001", (60, 1.001)),
])
def test_blender_fps_matches_blenders_own_presets(text, expected):
    fps, base = blender_fps(parse_fps(text))
    assert fps == expected[0] and base == pytest.approx(expected[1], abs=1e-12)


@pytest.mark.parametrize("text", ["30", "30000/1001", "24000/1001", "25/2", "1000/3", "1"])
def test_blender_fps_is_exact(text):
    fps, base = blender_fps(parse_fps(text))
    assert isinstance(fps, int) and 1 <= fps <= 32767
    assert fps / base == pytest.approx(float(Fraction(text)), rel=1e-14)


@pytest.mark.parametrize("text", ["0", "-30", "abc", "", "1/0", "40000"])
def test_parse_fps_rejects_nonsense(text):
    with pytest.raises(RenderFolderError, match="fps"):
        parse_fps(text)


def test_folder_problems_say_what_is_wrong(rendered, tmp_path):
    with pytest.raises(RenderFolderError, match="no render folder given"):
        read_render_folder("")
    with pytest.raises(RenderFolderError, match="is not a folder"):
        read_render_folder(tmp_path / "nowhere")
    with pytest.raises(RenderFolderError, match="has no manifest.json.*audio-cppn render"):
        read_render_folder(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RenderFolderError, match="not readable JSON"):
        read_render_folder(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"frames": 3}))
    with pytest.raises(RenderFolderError, match="not an audio-cppn render manifest"):
        read_render_folder(tmp_path)


@pytest.mark.parametrize("change,message", [
    ({"format_version": 2}, "format 2; this add-on reads format 1"),
    ({"size": [32]}, "'size' must be \\[width, height\\]"),
    ({"fps": 30}, "'fps' must be a string"),
    ({"settings__format": "tiff"}, "'settings.format' must be exr or png"),
    ({"ranges": []}, "lists no rendered frames"),
    ({"ranges": [[20, 12]]}, "'ranges' must hold \\[first, last\\]"),
    ({"frame_start": True}, "'frame_start' must be a whole number"),
    ({"audio": None}, "'audio' must be an object"),
])
def test_bad_manifest_fields_are_named(rendered, tmp_path, change, message):
    folder = copy_render(rendered, tmp_path)
    edit_manifest(folder, **change)
    with pytest.raises(RenderFolderError, match=message):
        read_render_folder(folder)


def test_plan_lists_every_frame_and_finds_the_audio(rendered):
    folder, audio = rendered
    plan = plan_load(folder)
    assert [p.name for p in plan.frame_paths] == [f"cppn.{n:06d}.png" for n in range(12, 21)]
    assert all(p.is_file() for p in plan.frame_paths)
    assert plan.audio == audio.resolve() and plan.warnings == []
    assert plan.video_path == folder.parent / "render_final.mp4"  # never the backend's own render.mp4
    assert plan_load(folder, LoadOptions(video_path=str(folder / "x.mp4"))).video_path == folder / "x.mp4"


def test_missing_frames_refuse_the_load_and_name_them(rendered, tmp_path):
    folder = copy_render(rendered, tmp_path)
    for n in (14, 15, 18):
        (folder / f"cppn.{n:06d}.png").unlink()
    with pytest.raises(RenderFolderError, match=r"missing 3 of 9 frames \(frames 14-15, 18, e\.g\. "
                                                r"cppn\.000014\.png\); run the same 'audio-cppn render'"):
        plan_load(folder)


def test_a_split_render_with_a_gap_is_missing_frames(rendered, tmp_path):
    folder = copy_render(rendered, tmp_path)
    edit_manifest(folder, ranges=[[12, 14], [18, 20]])
    for n in (15, 16, 17):
        (folder / f"cppn.{n:06d}.png").unlink()
    with pytest.raises(RenderFolderError, match="frames 15-17"):
        plan_load(folder)


def test_missing_audio_is_a_warning_not_an_error(rendered, tmp_path):
    folder = copy_render(rendered, tmp_path)
    edit_manifest(folder, audio__path=str(tmp_path / "gone" / "song.wav"))
    plan = plan_load(folder)
    assert plan.audio is None and len(plan.frame_paths) == 9
    assert len(plan.warnings) == 1 and "song.wav is missing, so no sound strip was added" in plan.warnings[0]
    assert plan_load(folder, LoadOptions(sound=False)).warnings == []  # no sound wanted: nothing to warn about


def test_audio_moved_beside_the_render_is_found_by_its_hash(rendered, tmp_path):
    folder, audio = rendered
    moved = copy_render(rendered, tmp_path)
    edit_manifest(moved, audio__path=str(tmp_path / "elsewhere" / "beat.wav"))
    shutil.copy(audio, tmp_path / "beat.wav")  # beside the render folder, as when a project is copied
    assert plan_load(moved).audio == tmp_path / "beat.wav"
    # Another track under the same name is not taken for it.
    write_audio(tmp_path / "beat.wav", tone(220, sr=22050, duration=1.0), 22050)
    assert plan_load(moved).audio is None


def test_changed_audio_is_loaded_with_a_warning(rendered, tmp_path):
    folder = copy_render(rendered, tmp_path)
    other = write_audio(tmp_path / "other.wav", tone(440, sr=22050, duration=1.0), 22050)
    edit_manifest(folder, audio__path=str(other))
    plan = plan_load(folder)
    assert plan.audio == other
    assert "changed since the frames were rendered" in plan.warnings[0]


def test_describe_frames():
    assert describe_frames([7]) == "frame 7"
    assert describe_frames([5, 3, 4, 9]) == "frames 3-5, 9"
    assert describe_frames(list(np.arange(0, 20, 2))) == "frames 0, 2, 4, 6, ..."


def test_options_are_checked():
    with pytest.raises(RenderFolderError, match="compositor mode must be one of REPLACE, BACKGROUND, NONE"):
        LoadOptions(compositor="OVER")
