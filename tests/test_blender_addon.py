"""The add-on in real Blender (bpy 4.2 LTS, 4.5 LTS and 5.0), loading renders made by the real backend.

bpy 4.2.23 from PyPI is built without Audaspace (``bpy.app.build_options.audaspace`` is False): it
cannot make sound strips or encode sound. There the add-on loads the frames with a warning and
encodes video only; the tests check exactly that on it, and sound everywhere else.

The backend renders tiny frame folders here (in ``.venv``); ``tests/blender/check_load_render.py``
then runs under each Blender venv's Python: it installs the built extension zip, calls the
operator, renders stills through the compositor, encodes the MP4, and prints what it saw as JSON.
These tests check the pixels, the MP4 and the scene against the files on disk.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from fractions import Fraction
from math import gcd
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

import build_addon
from backend.writers.image import read_image
from backend.render.job import RenderConfig, render
from tests.helpers.signals import write_audio

ROOT = Path(__file__).resolve().parent.parent
CHECK_SCRIPT = ROOT / "tests" / "blender" / "check_load_render.py"
BLENDERS = {"4.2": "4.2.23", "4.5": "4.5.15", "5.0": "5.0.1"}  # venv suffix -> pinned bpy version
SR = 22050
NTSC = Fraction(30000, 1001)


def jumpy_track(duration: float, *, seed: int = 1) -> np.ndarray:
    """A new random tone and noise level every 1/30 s: with smoothing off, neighbouring frames differ a
    lot, so a frame shown one off is never mistaken for the right one."""
    rng = np.random.default_rng(seed)
    n, step = int(SR * duration), SR // 30
    t = np.arange(step) / SR
    y = np.zeros(n, np.float32)
    for i in range(0, n, step):
        part = rng.uniform(0.02, 0.8) * np.sin(2 * np.pi * 60 * 2 ** rng.uniform(0, 6) * t)
        part += rng.uniform(0, 0.3) * rng.standard_normal(step) * (rng.random() < 0.5)
        y[i:i + step] = part[: n - i]
    return np.clip(y, -1, 1).astype(np.float32)


def png8(path) -> np.ndarray:
    return np.rint(read_image(path)[..., :3] * 255).astype(np.int16)


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """Three real renders of one track, the error folders, and the built add-on zip."""
    base = tmp_path_factory.mktemp("blender")
    audio = write_audio(base / "jumpy.wav", jumpy_track(1.25), SR)
    style = ROOT / "styles" / "aurora.safetensors"
    common = dict(width=64, height=36, audio_options={"smoothing": {}})
    render(audio, style, base / "exr30", config=RenderConfig(format="exr", duration=1.2, **common))
    render(audio, style, base / "png30", config=RenderConfig(format="png", duration=1.2, **common))
    # 29.97 fps, the audio's first instant at scene frame 10, and only frames 16-45 rendered (a shard).
    render(audio, style, base / "ntsc", config=RenderConfig(format="png", fps=NTSC, frame_start=10,
                                                            frames=(16, 45), **common))
    (base / "empty").mkdir()
    shutil.copytree(base / "exr30", base / "missing_frames")
    for n in (7, 8):
        (base / "missing_frames" / f"frame_{n:06d}.exr").unlink()
    shutil.copytree(base / "ntsc", base / "missing_audio")
    manifest = json.loads((base / "missing_audio" / "manifest.json").read_text())
    manifest["audio"]["path"] = str(base / "gone" / "nothing.wav")
    (base / "missing_audio" / "manifest.json").write_text(json.dumps(manifest))
    return {"base": base, "audio": audio, "zip": build_addon.build(base / "dist"),
            "png30": {n: png8(base / "png30" / f"frame_{n:06d}.png") for n in range(1, 37)},
            "ntsc": {n: png8(base / "ntsc" / f"frame_{n:06d}.png") for n in range(16, 46)}}


def cases(base: Path) -> list[dict]:
    return [
        {"name": "exr30", "folder": str(base / "exr30"), "stills": [1, 2, 18, 36], "encode": True},
        {"name": "png30", "folder": str(base / "png30"), "stills": [1, 2, 18, 36]},
        {"name": "ntsc", "folder": str(base / "ntsc"), "stills": [16, 17, 30, 45], "encode": True,
         "material": True},
        {"name": "background", "folder": str(base / "png30"), "options": {"compositor": "BACKGROUND"},
         "stills": [5]},
        {"name": "strip", "folder": str(base / "exr30"), "options": {"image_strip": True}, "stills": [1, 36]},
        {"name": "no_manifest", "folder": str(base / "empty")},
        {"name": "missing_frames", "folder": str(base / "missing_frames")},
        {"name": "missing_audio", "folder": str(base / "missing_audio")},
        {"name": "no_colorspace", "folder": str(base / "exr30"), "no_colorspace": True},
    ]


@pytest.fixture(scope="module", params=sorted(BLENDERS), ids=lambda v: f"blender-{v}")
def blender(request, renders, tmp_path_factory):
    """One Blender run per version over every case (a copy of the renders each, for the MP4s)."""
    version = request.param
    python = ROOT / f".venv-blender-{version}" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python.parent.parent.name} is missing: `make test` builds it "
                    f"(a venv with bpy=={BLENDERS[version]}); the add-on tests need real Blender")
    work = tmp_path_factory.mktemp(f"blender-{version}")
    base = work / "renders"
    shutil.copytree(renders["base"], base, ignore=shutil.ignore_patterns("dist"))
    spec = work / "spec.json"
    spec.write_text(json.dumps({"zip": str(renders["zip"]), "out": str(work / "stills"), "cases": cases(base)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["BLENDER_USER_RESOURCES"] = str(work / "user")  # never the real user config
    proc = subprocess.run([str(python), str(CHECK_SCRIPT), str(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"Blender {version} check failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    report = json.loads(lines[-1][len("RESULT "):])
    report["stdout"], report["base"], report["expected_version"] = proc.stdout, base, BLENDERS[version]
    return report


def test_built_zip_is_an_extension_with_bl_info(renders):
    with zipfile.ZipFile(renders["zip"]) as archive:
        names = archive.namelist()
        toml = archive.read("audio_cppn/blender_manifest.toml").decode()
        init = archive.read("audio_cppn/__init__.py").decode()
    assert renders["zip"].name == "audio_cppn-0.1.0.zip"
    assert sorted(names) == sorted(f"audio_cppn/{p.relative_to(ROOT / 'blender_addon').as_posix()}"
                                   for p in build_addon.addon_files())
    assert {"audio_cppn/operators.py", "audio_cppn/scene_setup.py", "audio_cppn/panels.py"} <= set(names)
    assert not any("__pycache__" in n for n in names)
    assert 'id = "audio_cppn"' in toml and 'blender_version_min = "4.2.0"' in toml
    assert "bl_info = {" in init


def test_build_is_reproducible_and_checks_versions(tmp_path):
    first = build_addon.build(tmp_path / "a").read_bytes()
    assert build_addon.build(tmp_path / "b").read_bytes() == first
    source = tmp_path / "src" / "blender_addon"
    shutil.copytree(ROOT / "blender_addon", source, ignore=shutil.ignore_patterns("__pycache__"))
    init = source / "__init__.py"
    init.write_text(init.read_text().replace('"version": (0, 1, 0)', '"version": (0, 2, 0)'))
    with pytest.raises(build_addon.BuildError, match="bl_info version 0.2.0 .* differs from"):
        build_addon.build(tmp_path / "c", source=source)


def test_built_add_on_imports_only_the_standard_library_bpy_and_itself(renders):
    """Read every module in the zip Blender installs (imports inside functions too)."""
    allowed = set(sys.stdlib_module_names) | {"bpy", "__future__"}
    with zipfile.ZipFile(renders["zip"]) as archive:
        modules = {n: archive.read(n).decode() for n in archive.namelist() if n.endswith(".py")}
    assert len(modules) >= 15
    for name, text in modules.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue  # relative: the add-on itself
            assert all(n.split(".")[0] in allowed for n in names), f"{name} imports {names}"


@pytest.mark.parametrize("version", sorted(BLENDERS))
def test_blenders_own_validator_accepts_the_zip(renders, version):
    """``blender_ext.py validate``, shipped inside each bpy, checks the manifest (lengths, permissions, ...)."""
    python = ROOT / f".venv-blender-{version}" / "bin" / "python"
    site = next((ROOT / f".venv-blender-{version}" / "lib").glob("python3*/site-packages"))
    cli = site / "bpy" / version / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    proc = subprocess.run([str(python), str(cli), "validate", str(renders["zip"])], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success parsing TOML" in proc.stdout
    with zipfile.ZipFile(renders["zip"]) as archive:
        manifest = archive.read("audio_cppn/blender_manifest.toml").decode()
    assert 'network = "Talks to the local Audio CPPN backend"' in manifest
    # A manifest Blender refuses is caught by the same validator (so a pass above means something).
    broken = renders["zip"].with_name("broken.zip")
    with zipfile.ZipFile(renders["zip"]) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("blender_manifest.toml"):
                data = data.replace(b'network = "Talks', b'network = "' + b"x" * 80 + b'"\nold = "')
            dst.writestr(item, data)
    proc = subprocess.run([str(python), str(cli), "validate", str(broken)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "no longer than 64 characters" in proc.stdout + proc.stderr


def test_extension_installs_and_enables(blender):
    assert blender["version_string"].startswith(blender["expected_version"])
    install = blender["install"]
    assert install["enabled"] and install["operator"]
    spaces = {"view3d": "VIEW_3D", "sequencer": "SEQUENCE_EDITOR", "compositor": "NODE_EDITOR"}
    expected = {}
    for suffix, space in spaces.items():
        expected[f"AUDIO_CPPN_PT_{suffix}"] = [space, "Audio CPPN"]
        for sub in ("train", "render", "frames"):
            expected[f"AUDIO_CPPN_PT_{suffix}_{sub}"] = [space, "Audio CPPN"]
    assert install["panels"] == expected


def test_sidebar_panel_shows_the_loaded_render(blender):
    buttons = [["operator", "audio_cppn.load_frames"], ["operator", "audio_cppn.encode_video"],
               ["operator", "audio_cppn.load_render"]]
    assert blender["cases"]["ntsc"]["panel"] == buttons + [["label", "ntsc"], ["label", "Frames 16-45 at 29.97 fps"]]
    assert blender["cases"]["no_manifest"]["panel"] == buttons + [["label", "No render loaded"]]


@pytest.mark.parametrize("case,reference", [("exr30", "png30"), ("png30", "png30"), ("ntsc", "ntsc"),
                                            ("strip", "png30")])
def test_scene_frame_n_shows_file_n(blender, renders, case, reference):
    """Compositor (or VSE) output at scene frame N equals frame file N, and no other file."""
    files = renders[reference]
    stills = blender["cases"][case]["stills"]
    assert stills
    for frame, path in stills.items():
        shown = png8(path)
        error = {n: int(np.abs(shown - ref).max()) for n, ref in files.items()}
        assert error[int(frame)] <= 1, f"{case}: frame {frame} is off by {error[int(frame)]} levels"
        assert all(e > 1 for n, e in error.items() if n != int(frame)), f"{case}: frame {frame} is ambiguous"


def test_exr_and_png_renders_look_the_same_in_blender(blender):
    """Scene-linear EXR through the Standard view gives the PNG's colours, within 8-bit rounding."""
    exr, png = blender["cases"]["exr30"]["stills"], blender["cases"]["png30"]["stills"]
    assert exr.keys() == png.keys()
    for frame in exr:
        assert np.abs(png8(exr[frame]) - png8(png[frame])).max() <= 1


def test_scene_timing_comes_from_the_manifest(blender):
    plain, ntsc = blender["cases"]["exr30"]["state"], blender["cases"]["ntsc"]["state"]
    assert (plain["fps"], plain["fps_base"]) == (30, 1.0)
    # fps_base is a float32 in Blender (1.001 reads back as 1.00100005); the MP4's exact 30000/1001
    # rate is checked in the encode test.
    assert (ntsc["fps"], ntsc["fps_base"]) == (30, pytest.approx(1.001, abs=1e-7))
    assert ntsc["fps"] / ntsc["fps_base"] == pytest.approx(float(NTSC), rel=1e-7)
    assert (plain["frame_start"], plain["frame_end"], plain["frame_current"]) == (1, 36, 1)
    assert (ntsc["frame_start"], ntsc["frame_end"], ntsc["frame_current"]) == (16, 45, 16)
    for state in (plain, ntsc):
        assert state["resolution"] == [64, 36, 100]
        assert (state["sync_mode"], state["view_transform"], state["look"]) == ("AUDIO_SYNC", "Standard", "None")


def test_image_sequence_and_compositor_wiring(blender):
    for case, count, first, colorspace, alpha in (("exr30", 36, 1, "Linear Rec.709", "PREMUL"),
                                                  ("ntsc", 30, 16, "sRGB", "STRAIGHT")):
        state = blender["cases"][case]["state"]
        assert state["image"]["source"] == "SEQUENCE"
        assert Path(state["image"]["filepath"]).name == f"frame_{first:06d}.{'exr' if case == 'exr30' else 'png'}"
        assert (state["image"]["colorspace"], state["image"]["alpha_mode"]) == (colorspace, alpha)
        node = next(n for n in state["nodes"] if n["name"] == "Audio CPPN Frames")
        assert (node["frame_duration"], node["frame_start"], node["frame_offset"]) == (count, first, first - 1)
        assert node["use_auto_refresh"] and not node["use_cyclic"]
        assert state["output_from"] == "Audio CPPN Frames"
        # Nothing needs the 3D render any more: its Render Layers nodes are muted so Blender skips it.
        assert all(n["mute"] for n in state["nodes"] if n["type"] == "CompositorNodeRLayers")
        assert state["folder_property"] == str(blender["base"] / case)


def test_sound_strip_starts_where_the_audio_does(blender, renders):
    for case, start in (("exr30", 1), ("ntsc", 10)):  # ntsc: frames 16-45 of a track starting at 10
        sounds = [s for s in blender["cases"][case]["state"]["strips"] if s["type"] == "SOUND"]
        if not blender["audio"]:  # a Blender without Audaspace: the frames load, with a warning
            assert sounds == [] and "Warning: this Blender is built without audio (Audaspace)" in blender["stdout"]
            continue
        assert len(sounds) == 1
        assert sounds[0]["frame_start"] == start and sounds[0]["frame_final_start"] == start
        assert sounds[0]["path"] == str(renders["audio"].resolve())


def test_output_is_h264_aac_mp4(blender):
    for case in ("exr30", "ntsc"):
        state = blender["cases"][case]["state"]
        assert state["file_format"] == "FFMPEG"
        audio_codec = "AAC" if blender["audio"] else "NONE"
        assert state["ffmpeg"] == {"format": "MPEG4", "codec": "H264", "audio_codec": audio_codec,
                                   "audio_channels": "MONO" if blender["audio"] else "STEREO"}
        assert state["filepath"] == str(blender["base"] / f"{case}_final.mp4")
        if blender["version"][0] >= 5:
            assert state["media_type"] == "VIDEO"


@pytest.mark.parametrize("case,reference,first,frame_start,fps", [
    ("exr30", "png30", 1, 1, Fraction(30)), ("ntsc", "ntsc", 16, 10, NTSC)])
def test_blenders_encode_keeps_picture_and_sound_in_sync(blender, renders, case, reference, first, frame_start,
                                                         fps):
    """The MP4 Blender encodes: video frame k is file first+k, at the exact rate, and its sound starts at
    the audio time of frame ``first``."""
    path = Path(blender["cases"][case]["video"])
    assert path == blender["base"] / f"{case}_final.mp4"
    files = renders[reference]
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert [s.codec_context.name for s in container.streams.audio] == (["aac"] if blender["audio"] else [])
        assert video.average_rate == fps
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    assert len(frames) == len(files)
    for k, frame in enumerate(frames):  # H.264 is lossy: the right file must be the closest one
        error = {n: np.abs(frame - ref).mean() for n, ref in files.items()}
        assert min(error, key=error.get) == first + k
    if not blender["audio"]:
        return
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    source, source_rate = sf.read(renders["audio"], dtype="float32")
    common = gcd(rate, source_rate)
    source = signal.resample_poly(source, rate // common, source_rate // common)
    lags = signal.correlation_lags(len(source), len(sound))
    offset = lags[np.argmax(signal.correlate(source, sound))] / rate
    assert offset == pytest.approx(float((first - frame_start) / fps), abs=0.005)  # a frame is 33 ms


def test_a_second_load_replaces_rather_than_stacks(blender):
    for case in ("exr30", "ntsc"):
        assert blender["cases"][case]["reloaded_state"] == blender["cases"][case]["state"]


def test_vse_image_strip_has_every_frame(blender):
    state = blender["cases"]["strip"]["state"]
    strip = next(s for s in state["strips"] if s["type"] == "IMAGE")
    assert strip["elements"] == [f"frame_{n:06d}.exr" for n in range(1, 37)]
    assert Path(strip["directory"]) == blender["base"] / "exr30"
    assert (strip["frame_final_start"], strip["frame_final_end"]) == (1, 37)
    assert strip["colorspace"] == "Linear Rec.709"
    sounds = [s for s in state["strips"] if s["type"] == "SOUND"]
    if blender["audio"]:  # the picture sits above its sound, at the same start frame
        assert strip["channel"] > sounds[0]["channel"] and strip["frame_final_start"] == sounds[0]["frame_final_start"]


def test_background_mode_puts_the_scene_over_the_frames(blender, renders):
    case = blender["cases"]["background"]
    assert case["state"]["output_from"] == "Audio CPPN Over" and case["state"]["film_transparent"]
    shown, frame = png8(case["stills"]["5"]), renders["png30"][5]
    assert np.abs(shown[:6, :6] - frame[:6, :6]).max() <= 1  # empty corner: the frame itself
    assert np.abs(shown[14:22, 28:36] - frame[14:22, 28:36]).max() > 20  # the default cube, in front


def test_material_shows_the_sequence_in_sync(blender):
    material = blender["cases"]["ntsc"]["material"]
    assert material["image"] == blender["cases"]["ntsc"]["state"]["image"]["name"]
    assert (material["frame_duration"], material["frame_start"], material["frame_offset"]) == (30, 16, 15)
    assert material["use_auto_refresh"] and not material["use_cyclic"]


@pytest.mark.parametrize("case,message", [
    ("no_manifest", "has no manifest.json; choose a folder written by 'audio-cppn render"),
    ("missing_frames", "is missing 2 of 36 frames (frames 7-8, e.g. frame_000007.exr)"),
])
def test_problems_are_reported_and_leave_the_scene_unchanged(blender, case, message):
    result = blender["cases"][case]
    assert result["error"] is not None and message in result["error"]
    assert result["unchanged"]


def test_a_missing_colour_space_is_a_reported_error_not_a_traceback(blender):
    error = blender["cases"]["no_colorspace"]["error"]
    assert "offers none of the colour spaces No Such Space" in error and "Traceback" not in error


def test_missing_audio_still_loads_the_frames_with_a_warning(blender):
    result = blender["cases"]["missing_audio"]
    assert result["error"] is None and result["outcome"] == ["FINISHED"]
    assert result["state"]["image"]["source"] == "SEQUENCE"
    assert not [s for s in result["state"]["strips"] if s["type"] == "SOUND"]
    assert "Warning: the audio file" in blender["stdout"] and "nothing.wav is missing" in blender["stdout"]
