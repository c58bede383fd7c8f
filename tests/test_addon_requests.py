"""The add-on's bpy-free request building and response reading (plain Python, what the sidebar sends)."""

import struct
from fractions import Fraction

import pytest

from backend.server.requests import RenderRequest, TrainRequest, render_config
from blender_addon.client import BackendDown, read_server_file
from blender_addon.job_request import (RenderSettings, SettingsError, TrainSettings, exact_fps, fps_text,
                                       health_text, output_size, parse_job, render_request, style_name_from_prompt,
                                       train_request)
from blender_addon.render_manifest import blender_fps


@pytest.mark.parametrize("fps,base,expected", [
    (24, 1.0, "24"), (25, 1.0, "25"), (30, 1.001, "30000/1001"), (24, 1.001, "24000/1001"),
    (60, 1.001, "60000/1001"), (12, 0.96, "25/2"), (120, 1.0, "120")])
def test_scene_fps_is_sent_exactly(fps, base, expected):
    assert fps_text(exact_fps(fps, base)) == expected


@pytest.mark.parametrize("text", ["30000/1001", "24000/1001", "30", "25/2", "1000/3"])
def test_fps_round_trips_through_blenders_fps_and_base(text):
    """What load_render writes into a scene comes back as the same exact rate."""
    fps, base = blender_fps(Fraction(text))
    assert exact_fps(fps, base) == Fraction(text)


def test_size_is_resolution_times_percentage_as_blender_truncates():
    assert output_size(1920, 1080, 100) == (1920, 1080)
    assert output_size(1920, 1080, 50) == (960, 540)
    assert output_size(1921, 1081, 50) == (960, 540)
    with pytest.raises(SettingsError, match="empty"):
        output_size(1, 1, 1)


def settings(tmp_path, **changes) -> RenderSettings:
    audio = tmp_path / "song.wav"
    audio.write_bytes(b"RIFF")
    values = dict(audio=str(audio), audio_start=10, style="aurora", output=str(tmp_path / "out"), fps=30,
                  fps_base=1.001, resolution_x=1280, resolution_y=720, percentage=50, frame_range=(1, 250),
                  file_format="png", reactivity={"amount": 1.5, "morph": 1.0, "swell": 0.35, "pulse": 0.6,
                                                 "flash": 0.0}, gains={"bass": 2.0, "onset": 1.0})
    values.update(changes)
    return RenderSettings(**values)


def test_render_request_carries_the_scene(tmp_path):
    body = render_request(settings(tmp_path))
    assert body == {"kind": "render", "audio": str(tmp_path / "song.wav"), "style": "aurora",
                    "output": str(tmp_path / "out"), "width": 640, "height": 360, "fps": "30000/1001",
                    "frame_start": 10, "format": "png", "overwrite": False,
                    "frames": [10, 250],  # nothing before the music starts
                    "reactivity": 1.5, "morph": 1.0, "swell": 0.35, "pulse": 0.6, "flash": 0.0,
                    "gains": {"bass": 2.0}}
    assert "frames" not in render_request(settings(tmp_path, frame_range=None))  # the whole track


def test_render_request_is_what_the_service_accepts(tmp_path):
    """The service's own request model and config builder take the body as the add-on sends it."""
    body = render_request(settings(tmp_path))
    request = RenderRequest(**body)
    config = render_config(request.model_dump())
    assert config.fps == Fraction(30000, 1001) and (config.width, config.height) == (640, 360)
    assert config.frames == (10, 250) and config.frame_start == 10
    assert config.reactivity.amount == 1.5 and config.reactivity.gains == {"bass": 2.0}


@pytest.mark.parametrize("change,message", [
    ({"audio": ""}, "no sound strip; add one or pick a file"),
    ({"audio": "/nowhere/x.wav"}, "does not exist"),
    ({"style": ""}, "no style chosen"),
    ({"output": "."}, "save the .blend first"),
    ({"frame_range": (1, 5)}, "ends \\(5\\) before the audio starts \\(10\\)"),
    ({"fps": 0}, "frame rate"),
])
def test_bad_settings_say_what_to_fix(tmp_path, change, message):
    with pytest.raises(SettingsError, match=message):
        render_request(settings(tmp_path, **change))


def test_train_request(tmp_path):
    body = train_request(TrainSettings(prompt=" Neon jellyfish, deep sea ", name="", steps=40,
                                       resolutions="32, 64", seed=3, extra={"clip_model": "local-dir:/x"}))
    assert body == {"kind": "train", "prompt": "Neon jellyfish, deep sea", "name": "neon_jellyfish_deep",
                    "negative": "", "steps": 40, "resolutions": [32, 64], "seed": 3, "clip_model": "local-dir:/x"}
    TrainRequest(**body)  # the service's model accepts it
    with pytest.raises(SettingsError, match="type a prompt"):
        train_request(TrainSettings(prompt="  ", name="x"))
    with pytest.raises(SettingsError, match="resolutions must be sizes"):
        train_request(TrainSettings(prompt="a", name="x", resolutions="big"))
    assert style_name_from_prompt("!!!") == "style"


def test_job_records_become_status_lines():
    job = parse_job({"id": 7, "kind": "render", "state": "running", "rate": 4.12, "eta_s": 70.4,
                     "progress": {"stage": "render", "done": 12, "total": 300, "fraction": 0.04, "message": ""},
                     "request": {"frames": [1, 300]}, "result": None, "error": None})
    assert (job.id, job.done, job.total, job.finished) == ("7", 12, 300, False)
    assert job.progress_text() == "Frame 12/300 · 4.12 frames/s · ETA 1:10"
    failed = parse_job({"id": 8, "kind": "train", "state": "failed", "progress": None,
                        "error": {"kind": "NotFound", "message": "no CLIP weights", "fix": "download them"}})
    assert failed.finished and failed.error_text() == "no CLIP weights — download them"
    assert failed.progress_text() == "Failed"
    train = parse_job({"id": 9, "kind": "train", "state": "running", "rate": 2.0, "eta_s": 3725,
                       "progress": {"stage": "train", "done": 5, "total": 800, "fraction": 0.00625}})
    assert train.progress_text() == "Step 5/800 · 2 steps/s · ETA 1:02:05"


def test_health_becomes_the_status_line():
    assert health_text({"version": "0.1.0", "device": "cuda", "gpu": "NVIDIA H200",
                        "gpu_memory_free_mb": 131072}) == "Connected · 0.1.0 · cuda · NVIDIA H200 · 128 GiB free"
    assert health_text({"version": "0.1.0", "device": "cpu", "gpu": None}) == "Connected · 0.1.0 · cpu"


def test_server_file_discovery(tmp_path):
    assert read_server_file(tmp_path) is None
    (tmp_path / "token").write_text("secret\n")
    (tmp_path / "server.json").write_text('{"url": "http://127.0.0.1:5000/", "port": 5000, "pid": 42, '
                                          f'"version": "0.1.0", "token_file": "{tmp_path / "token"}"}}')
    info = read_server_file(tmp_path)
    assert (info.url, info.token, info.pid, info.version) == ("http://127.0.0.1:5000", "secret", 42, "0.1.0")
    (tmp_path / "server.json").write_text("{half")
    with pytest.raises(BackendDown, match="not readable"):
        read_server_file(tmp_path)


def test_scene_range_is_clipped_to_the_track(tmp_path):
    """Blender's default range (1-250) is longer than most tracks: render the frames the music covers."""
    from tests.helpers.signals import tone, write_audio

    audio = write_audio(tmp_path / "two_s.wav", tone(440, sr=22050, duration=2.0), 22050)
    body = render_request(settings(tmp_path, audio=str(audio), audio_start=10, frame_range=(1, 250)))
    assert body["frames"] == [10, 10 + 60 - 1]  # 2 s at 29.97 fps: ceil(59.94) = 60 frames
    with pytest.raises(SettingsError, match="starts \\(100\\) after the audio ends \\(69\\)"):
        render_request(settings(tmp_path, audio=str(audio), audio_start=10, frame_range=(100, 250)))
    # Not a WAV the standard library reads: the sound strip's length decides.
    body = render_request(settings(tmp_path, audio_frames=30, frame_range=(1, 250)))
    assert body["frames"] == [10, 39]


@pytest.mark.parametrize("fps,base,expected", [(30, 1.001, "30000/1001"), (24, 1.001, "24000/1001"),
                                               (12, 0.96, "25/2"), (25, 1.0, "25")])
def test_fps_base_as_blender_stores_it(fps, base, expected):
    """Blender keeps fps_base as a float32: 1.001 comes back as 1.00100004673..."""
    stored = struct.unpack("f", struct.pack("f", base))[0]
    assert stored != base or base in (1.0,)
    assert fps_text(exact_fps(fps, stored)) == expected


def test_every_gain_the_sidebar_offers_is_a_feature_the_backend_knows(tmp_path):
    """The add-on keeps its own list (it imports nothing from the backend): each name must be a
    feature, have its slider, and pass the service's validation, the drums and the harmony included."""
    import ast
    from pathlib import Path

    from backend.audio.names import FEATURE_NAMES

    source = (Path(__file__).resolve().parents[1] / "blender_addon" / "props.py").read_text()
    tree = ast.parse(source)
    gains = next(ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "GAIN_FEATURES" for t in node.targets))
    sliders = {node.target.id for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
               and isinstance(node.target, ast.Name) and node.target.id.startswith("gain_")}
    assert {"percussive", "harmonic"} <= set(gains) <= set(FEATURE_NAMES)
    assert sliders == {f"gain_{name}" for name in gains}
    config = render_config(RenderRequest(**render_request(settings(tmp_path, gains={name: 2.0 for name in gains}))
                                         ).model_dump())
    assert config.reactivity.gains == {name: 2.0 for name in gains}
